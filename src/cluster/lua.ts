// Lock scripts, run inside Redis so that checking and changing the lock table is one step for
// every gateway sharing it. The table is a hash (KEYS[1]) of token -> lock record (JSON); each
// lock also has a marker key ARGV[1]..token whose TTL is the lock's timeout, so Redis itself
// expires locks: a record whose marker is gone is dead and is removed by the next script that
// meets it. Marker keys are not declared in KEYS: this needs one Redis, not a Redis Cluster.
//
// The conflict rules are those of conflictOf (src/gateway/davstate.ts); paths arrive in NFC.

const PRELUDE = `
local function within(p, prefix)
  return prefix == '/' or p == prefix or string.sub(p, 1, #prefix + 1) == prefix .. '/'
end
-- The live records, the dead ones removed from the table.
local function live(idx, markers)
  local all = redis.call('HGETALL', idx)
  local out = {}
  for i = 1, #all, 2 do
    if redis.call('EXISTS', markers .. all[i]) == 1 then
      out[#out + 1] = all[i + 1]
    else
      redis.call('HDEL', idx, all[i])
    end
  end
  return out
end
`;

/** ARGV: marker prefix. Returns every live lock record. */
export const LIST = `${PRELUDE}
return live(KEYS[1], ARGV[1])
`;

/**
 * ARGV: marker prefix, token, record, ttl ms, root, scope, depth. Adds the lock unless a live
 * one conflicts; returns the conflicting record, or nil when the lock was added.
 */
export const ACQUIRE = `${PRELUDE}
local root, scope, depth = ARGV[5], ARGV[6], ARGV[7]
for _, rec in ipairs(live(KEYS[1], ARGV[1])) do
  local l = cjson.decode(rec)
  local covers = l.root == root or (l.depth == 'infinity' and within(root, l.root))
  local below = depth == 'infinity' and within(l.root, root)
  if (covers or below) and (scope == 'exclusive' or l.scope == 'exclusive') then return rec end
end
redis.call('SET', ARGV[1] .. ARGV[2], '1', 'PX', ARGV[4])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return nil
`;

/** ARGV: marker prefix, token, record, ttl ms. 1 when refreshed, 0 when the lock is gone. */
export const REFRESH = `
if redis.call('EXISTS', ARGV[1] .. ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[2])
  return 0
end
redis.call('SET', ARGV[1] .. ARGV[2], '1', 'PX', ARGV[4])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
`;

/** ARGV: marker prefix, path. Removes every lock taken at or below the path; returns how many. */
export const DROP_WITHIN = `${PRELUDE}
local n = 0
for _, rec in ipairs(live(KEYS[1], ARGV[1])) do
  local l = cjson.decode(rec)
  if within(l.root, ARGV[2]) then
    redis.call('DEL', ARGV[1] .. l.token)
    redis.call('HDEL', KEYS[1], l.token)
    n = n + 1
  end
end
return n
`;
