import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { propKey, type DavState, type DeadProperty, type LockRecord } from '../../src/gateway/davstate.js';
import { LocalDavState } from '../../src/gateway/localstate.js';
import { conflictingLock } from '../../src/gateway/lock.js';
import { checkLocks, type GatewayContext } from '../../src/gateway/request.js';
import { LockedError } from '../../src/errors.js';
import { RedisLink } from '../../src/cluster/redis.js';
import { RedisDavState } from '../../src/cluster/redis-state.js';
import { haveRedis, startRedis, type RedisServer } from '../helpers/redis.js';

let n = 0;
function lock(root: string, scope: LockRecord['scope'], depth: LockRecord['depth'], ttlSeconds = 600): LockRecord {
  return { token: `urn:uuid:t${++n}`, root, scope, depth, owner: '', principal: '', timeoutSeconds: ttlSeconds, expiresAt: Date.now() + ttlSeconds * 1000 };
}

function prop(local: string, xml = local, ns = 'urn:x'): DeadProperty {
  return { ns, local, xml };
}

const tokensOf = (locks: LockRecord[]) => locks.map((l) => l.token).sort();

/** checkLocks only reads ctx.state. */
const ctxOf = (state: DavState) => ({ state }) as unknown as GatewayContext;

async function add(s: DavState, l: LockRecord): Promise<void> {
  assert.equal(await s.acquireLock(l), undefined, `${l.root} is free`);
}

/** The same rules, whichever home the state has: one gateway's memory, or the shared Redis. */
function suite(name: string, open: () => Promise<DavState>): void {
  describe(`${name}: locks`, () => {
    it('a resource is covered by its own locks and by depth-infinity locks of its ancestors only', async () => {
      const s = await open();
      const deep = lock('/a', 'shared', 'infinity');
      const shallow = lock('/a/b', 'shared', '0');
      const own = lock('/a/b/c', 'shared', '0'); // shared: an exclusive one would conflict with /a's
      for (const l of [deep, shallow, own]) await add(s, l);
      assert.deepEqual(tokensOf((await s.locksCovering('/a/b/c'))), tokensOf([deep, own]), 'the depth-0 lock of the parent does not cover a child');
      assert.deepEqual(tokensOf((await s.locksCovering('/a/b'))), tokensOf([deep, shallow]));
      assert.deepEqual((await s.locksCovering('/other')), []);
      assert.deepEqual(tokensOf((await s.locksWithin('/a'))), tokensOf([deep, shallow, own]), 'a tree operation sees the locks below');
      assert.deepEqual(tokensOf((await s.locksWithin('/a/b/c'))), tokensOf([deep, own]));
      assert.deepEqual((await s.locksWithin('/ab')), [], '/ab is not below /a');
    });

    it('exclusive and shared: what a new LOCK conflicts with', async () => {
      const s = await open();
      await add(s, lock('/s', 'shared', '0'));
      assert.equal(await conflictingLock(s, '/s', 'shared', '0'), undefined, 'shared locks coexist');
      assert.ok(await conflictingLock(s, '/s', 'exclusive', '0'), 'an exclusive lock conflicts with a shared one');
      const ex = lock('/e', 'exclusive', '0');
      await add(s, ex);
      assert.equal((await conflictingLock(s, '/e', 'shared', '0'))?.token, ex.token);
      assert.equal((await conflictingLock(s, '/e', 'exclusive', '0'))?.token, ex.token);
      assert.equal(await conflictingLock(s, '/e2', 'exclusive', '0'), undefined, 'a sibling with a common prefix is free');
    });

    it('depth infinity conflicts with locks on descendants, and with depth-infinity locks above', async () => {
      const s = await open();
      const below = lock('/d/x/y', 'exclusive', '0');
      await add(s, below);
      assert.equal((await conflictingLock(s, '/d', 'shared', 'infinity'))?.token, below.token);
      assert.equal(await conflictingLock(s, '/d', 'shared', '0'), undefined, 'depth 0 on the ancestor does not reach the descendant');
      const above = lock('/p', 'exclusive', 'infinity');
      await add(s, above);
      assert.equal((await conflictingLock(s, '/p/q/r', 'shared', '0'))?.token, above.token);
    });

    it('expired locks are gone from every lookup and from the gauge', async () => {
      const s = await open();
      const live = lock('/f', 'shared', '0');
      const dead = { ...lock('/f', 'shared', '0'), expiresAt: Date.now() - 1 };
      await add(s, live);
      await add(s, dead);
      assert.deepEqual(tokensOf((await s.locksOn('/f'))), [live.token]);
      assert.deepEqual(tokensOf((await s.locksCovering('/f'))), [live.token]);
      assert.equal((await s.activeLocks()), 1);
      assert.equal(await conflictingLock(s, '/g', 'exclusive', '0'), undefined);
      await add(s, { ...lock('/g', 'exclusive', '0'), expiresAt: Date.now() - 1 });
      assert.equal(await conflictingLock(s, '/g', 'exclusive', '0'), undefined, 'an expired lock conflicts with nothing');
    });

    it('a refresh extends the timeout; removal by token leaves the other locks', async () => {
      const s = await open();
      const a = lock('/r', 'shared', '0', 1);
      const b = lock('/r', 'shared', '0');
      await add(s, a);
      await add(s, b);
      const before = a.expiresAt;
      const r = await s.refreshLock(a, 3600);
      assert.equal(r?.timeoutSeconds, 3600);
      assert.ok(r.expiresAt >= before + 3_590_000);
      assert.equal((await s.locksCovering('/r')).find((l) => l.token === a.token)?.expiresAt, r.expiresAt, 'found by its token');
      await s.removeLock(a);
      assert.deepEqual(tokensOf((await s.locksOn('/r'))), [b.token]);
      assert.equal((await s.locksCovering('/r')).find((l) => l.token === a.token), undefined);
    });

    it('one resource, one key: a lock taken on an NFD name covers the NFC spelling', async () => {
      const s = await open();
      const l = lock('/cafe\u0301', 'exclusive', '0');
      await add(s, l);
      assert.deepEqual(tokensOf((await s.locksOn('/caf\u00e9'))), [l.token]);
      assert.equal((await s.locksOn('/caf\u00e9'))[0]!.root, '/caf\u00e9');
    });

    it('checkLocks: every exclusive token, or one shared token; the parent counts for membership', async () => {
      const s = await open();
      const ctx = ctxOf(s);
      const ex = lock('/x', 'exclusive', 'infinity');
      await add(s, ex);
      await assert.rejects(() => checkLocks(ctx, '/x/f', new Set()), LockedError);
      await assert.rejects(() => checkLocks(ctx, '/x/f', new Set(['urn:uuid:other'])), LockedError);
      await checkLocks(ctx, '/x/f', new Set([ex.token]));
      const s1 = lock('/sh', 'shared', '0');
      const s2 = lock('/sh', 'shared', '0');
      await add(s, s1);
      await add(s, s2);
      await assert.rejects(() => checkLocks(ctx, '/sh', new Set()), LockedError);
      await checkLocks(ctx, '/sh', new Set([s2.token]));
      const parent = lock('/dir', 'exclusive', '0');
      await add(s, parent);
      await checkLocks(ctx, '/dir/new', new Set());
      await assert.rejects(() => checkLocks(ctx, '/dir/new', new Set(), { membership: true }), LockedError, 'a new member changes the locked parent');
      const child = lock('/t/a/b', 'exclusive', '0');
      await add(s, child);
      await checkLocks(ctx, '/t', new Set());
      await assert.rejects(() => checkLocks(ctx, '/t', new Set(), { tree: true }), LockedError, 'DELETE of /t must own the lock below');
    });
  });

  describe(`${name}: dead properties`, () => {
    it('set replaces the whole set; removing the last property forgets the resource', async () => {
      const s = await open();
      assert.equal((await s.properties('/p')), undefined);
      await s.setProperties('/p', new Map([[propKey('urn:x', 'a'), prop('a')], [propKey('urn:x', 'b'), prop('b')]]));
      assert.deepEqual([...(await s.properties('/p'))!.keys()].sort(), ['{urn:x}a', '{urn:x}b']);
      await s.setProperties('/p', new Map([[propKey('urn:x', 'b'), prop('b', 'new')]]));
      assert.deepEqual([...(await s.properties('/p'))!.keys()], ['{urn:x}b'], 'a is removed');
      assert.equal((await s.properties('/p'))!.get('{urn:x}b')!.xml, 'new');
      await s.setProperties('/p', new Map());
      assert.equal((await s.properties('/p')), undefined);
    });

    it('move carries the properties of the whole tree and drops its locks', async () => {
      const s = await open();
      await s.setProperties('/m', new Map([['k', prop('root')]]));
      await s.setProperties('/m/c', new Map([['k', prop('child')]]));
      await s.setProperties('/mx', new Map([['k', prop('sibling')]]));
      await s.setProperties('/n', new Map([['k', prop('overwritten')]]));
      await add(s, lock('/m/c', 'exclusive', '0'));
      await s.move('/m', '/n');
      assert.equal((await s.properties('/n'))!.get('k')!.xml, 'root');
      assert.equal((await s.properties('/n/c'))!.get('k')!.xml, 'child');
      assert.equal((await s.properties('/m')), undefined);
      assert.equal((await s.properties('/m/c')), undefined);
      assert.equal((await s.properties('/mx'))!.get('k')!.xml, 'sibling', 'a name sharing the prefix stays');
      assert.deepEqual((await s.locksWithin('/m')), []);
      assert.deepEqual((await s.locksWithin('/n')), [], 'locks do not follow a move');
    });

    it('copy duplicates properties (the top only when shallow), never locks; the copies are independent', async () => {
      const s = await open();
      await s.setProperties('/c', new Map([['k', prop('top')]]));
      await s.setProperties('/c/in', new Map([['k', prop('inner')]]));
      await add(s, lock('/c', 'exclusive', 'infinity'));
      await s.copy('/c', '/deep', false);
      await s.copy('/c', '/shallow', true);
      assert.equal((await s.properties('/deep/in'))!.get('k')!.xml, 'inner');
      assert.equal((await s.properties('/shallow'))!.get('k')!.xml, 'top');
      assert.equal((await s.properties('/shallow/in')), undefined);
      assert.deepEqual((await s.locksWithin('/deep')), []);
      assert.equal((await s.locksOn('/c')).length, 1, 'the source keeps its lock');
      await s.setProperties('/deep', new Map());
      assert.equal((await s.properties('/c'))!.get('k')!.xml, 'top', 'changing the copy leaves the source');
    });

    it('delete removes properties and locks of the tree, not of a name sharing the prefix', async () => {
      const s = await open();
      await s.setProperties('/z/a', new Map([['k', prop('a')]]));
      await s.setProperties('/zz', new Map([['k', prop('zz')]]));
      await add(s, lock('/z/a', 'shared', '0'));
      await s.delete('/z');
      assert.equal((await s.properties('/z/a')), undefined);
      assert.deepEqual((await s.locksWithin('/z')), []);
      assert.ok((await s.properties('/zz')));
    });
  });
}

suite('local', () => LocalDavState.open('memory', tmpdir()));

describe('local: persistence', () => {
  it('with the sqlite store, properties and locks survive a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'davstate-'));
    try {
      const s = await LocalDavState.open('sqlite', dir);
      const l = lock('/kept', 'exclusive', 'infinity');
      await add(s, l);
      // Reloaded under propKey(ns, local), the key PROPPATCH uses.
      await s.setProperties('/kept', new Map([[propKey('urn:x', 'v'), prop('v', '<x>1</x>')]]));
      await s.close();
      const again = await LocalDavState.open('sqlite', dir);
      assert.deepEqual(tokensOf(await again.locksCovering('/kept/below')), [l.token]);
      assert.equal((await again.properties('/kept'))!.get(propKey('urn:x', 'v'))!.xml, '<x>1</x>');
      await again.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('redis', { skip: !haveRedis() && 'redis-server is not installed (scripts/test-deps.sh)' }, () => {
  let server: RedisServer;
  const links: RedisLink[] = [];
  let prefixes = 0;
  /** A fresh namespace in the one server per state: the tests do not see each other's locks. */
  const openRedis = async (): Promise<DavState> => {
    const link = new RedisLink({ url: server.url, keyPrefix: `t${++prefixes}:`, commandTimeout: 1000 });
    links.push(link);
    link.start();
    for (let i = 0; i < 200 && link.notReady(); i++) await new Promise((r) => setTimeout(r, 10));
    return new RedisDavState(link);
  };
  before(async () => { server = await startRedis(); });
  after(async () => {
    for (const l of links) await l.close();
    await server?.stop();
  });
  suite('redis', openRedis);

  it('two gateways racing for one exclusive lock: exactly one gets it', async () => {
    const a = await openRedis();
    const link = links.at(-1)!;
    const b = new RedisDavState(link);
    const tries = Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).acquireLock(lock('/race', 'exclusive', '0')));
    const results = await Promise.all(tries);
    assert.equal(results.filter((r) => r === undefined).length, 1, 'one winner');
    assert.equal((await a.locksOn('/race')).length, 1);
  });

  it('a lock expires with its Redis TTL', async () => {
    const s = await openRedis();
    const l = { ...lock('/ttl', 'exclusive', '0', 1), expiresAt: Date.now() + 150 };
    await add(s, l);
    assert.equal((await s.locksOn('/ttl')).length, 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await s.locksOn('/ttl'), []);
    assert.equal(await s.acquireLock(lock('/ttl', 'exclusive', '0')), undefined, 'free again');
  });

  it('with Redis down every call fails at once with 503, and works again when it is back', async () => {
    const s = await openRedis();
    await server.down();
    const t0 = Date.now();
    await assert.rejects(() => s.locksOn('/x'), (err: Error & { status?: number }) => err.status === 503);
    assert.ok(Date.now() - t0 < 1000, 'no waiting for a dead Redis');
    const view = await s.view(['/x']);
    assert.deepEqual(view.locksCovering('/x'), [], 'PROPFIND goes on without shared state');
    await server.up();
    const deadline = Date.now() + 5000;
    for (;;) {
      try { await s.locksOn('/x'); break; } catch (err) { if (Date.now() > deadline) throw err; }
      await new Promise((r) => setTimeout(r, 50));
    }
  });
});
