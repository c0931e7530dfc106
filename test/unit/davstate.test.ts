import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DavState, propKey, type DeadProperty, type LockRecord } from '../../src/gateway/davstate.js';
import { conflictingLock } from '../../src/gateway/lock.js';
import { checkLocks, type GatewayContext } from '../../src/gateway/request.js';
import { LockedError } from '../../src/errors.js';

let n = 0;
function lock(root: string, scope: LockRecord['scope'], depth: LockRecord['depth'], ttlSeconds = 600): LockRecord {
  return { token: `urn:uuid:t${++n}`, root, scope, depth, owner: '', principal: '', timeoutSeconds: ttlSeconds, expiresAt: Date.now() + ttlSeconds * 1000 };
}

function prop(local: string, xml = local, ns = 'urn:x'): DeadProperty {
  return { ns, local, xml };
}

const tokensOf = (locks: LockRecord[]) => locks.map((l) => l.token).sort();
const memory = () => DavState.open('memory', tmpdir());

/** checkLocks only reads ctx.state. */
const ctxOf = (state: DavState) => ({ state }) as unknown as GatewayContext;

describe('DavState locks', () => {
  it('a resource is covered by its own locks and by depth-infinity locks of its ancestors only', async () => {
    const s = await memory();
    const deep = lock('/a', 'shared', 'infinity');
    const shallow = lock('/a/b', 'shared', '0');
    const own = lock('/a/b/c', 'exclusive', '0');
    for (const l of [deep, shallow, own]) await s.addLock(l);
    assert.deepEqual(tokensOf(s.locksCovering('/a/b/c')), tokensOf([deep, own]), 'the depth-0 lock of the parent does not cover a child');
    assert.deepEqual(tokensOf(s.locksCovering('/a/b')), tokensOf([deep, shallow]));
    assert.deepEqual(s.locksCovering('/other'), []);
    assert.deepEqual(tokensOf(s.locksWithin('/a')), tokensOf([deep, shallow, own]), 'a tree operation sees the locks below');
    assert.deepEqual(tokensOf(s.locksWithin('/a/b/c')), tokensOf([deep, own]));
    assert.deepEqual(s.locksWithin('/ab'), [], '/ab is not below /a');
  });

  it('exclusive and shared: what a new LOCK conflicts with', async () => {
    const s = await memory();
    await s.addLock(lock('/s', 'shared', '0'));
    assert.equal(conflictingLock(s, '/s', 'shared', '0'), undefined, 'shared locks coexist');
    assert.ok(conflictingLock(s, '/s', 'exclusive', '0'), 'an exclusive lock conflicts with a shared one');
    const ex = lock('/e', 'exclusive', '0');
    await s.addLock(ex);
    assert.equal(conflictingLock(s, '/e', 'shared', '0')?.token, ex.token);
    assert.equal(conflictingLock(s, '/e', 'exclusive', '0')?.token, ex.token);
    assert.equal(conflictingLock(s, '/e2', 'exclusive', '0'), undefined, 'a sibling with a common prefix is free');
  });

  it('depth infinity conflicts with locks on descendants, and with depth-infinity locks above', async () => {
    const s = await memory();
    const below = lock('/d/x/y', 'exclusive', '0');
    await s.addLock(below);
    assert.equal(conflictingLock(s, '/d', 'shared', 'infinity')?.token, below.token);
    assert.equal(conflictingLock(s, '/d', 'shared', '0'), undefined, 'depth 0 on the ancestor does not reach the descendant');
    const above = lock('/p', 'exclusive', 'infinity');
    await s.addLock(above);
    assert.equal(conflictingLock(s, '/p/q/r', 'shared', '0')?.token, above.token);
  });

  it('expired locks are gone from every lookup and from the gauge', async () => {
    const s = await memory();
    const live = lock('/f', 'shared', '0');
    const dead = { ...lock('/f', 'shared', '0'), expiresAt: Date.now() - 1 };
    await s.addLock(live);
    await s.addLock(dead);
    assert.deepEqual(tokensOf(s.locksOn('/f')), [live.token]);
    assert.deepEqual(tokensOf(s.locksCovering('/f')), [live.token]);
    assert.equal(s.activeLocks(), 1);
    assert.equal(conflictingLock(s, '/g', 'exclusive', '0'), undefined);
    await s.addLock({ ...lock('/g', 'exclusive', '0'), expiresAt: Date.now() - 1 });
    assert.equal(conflictingLock(s, '/g', 'exclusive', '0'), undefined, 'an expired lock conflicts with nothing');
  });

  it('a refresh extends the timeout; removal by token leaves the other locks', async () => {
    const s = await memory();
    const a = lock('/r', 'shared', '0', 1);
    const b = lock('/r', 'shared', '0');
    await s.addLock(a);
    await s.addLock(b);
    const before = a.expiresAt;
    await s.refreshLock(a, 3600);
    assert.equal(a.timeoutSeconds, 3600);
    assert.ok(a.expiresAt >= before + 3_590_000);
    assert.equal(s.locksCovering('/r').find((l) => l.token === a.token)?.expiresAt, a.expiresAt, 'found by its token');
    await s.removeLock(a);
    assert.deepEqual(tokensOf(s.locksOn('/r')), [b.token]);
    assert.equal(s.locksCovering('/r').find((l) => l.token === a.token), undefined);
  });

  it('one resource, one key: a lock taken on an NFD name covers the NFC spelling', async () => {
    const s = await memory();
    const l = lock('/cafe\u0301', 'exclusive', '0');
    await s.addLock(l);
    assert.deepEqual(tokensOf(s.locksOn('/caf\u00e9')), [l.token]);
    assert.equal(s.locksOn('/caf\u00e9')[0]!.root, '/caf\u00e9');
  });

  it('checkLocks: every exclusive token, or one shared token; the parent counts for membership', async () => {
    const s = await memory();
    const ctx = ctxOf(s);
    const ex = lock('/x', 'exclusive', 'infinity');
    await s.addLock(ex);
    assert.throws(() => checkLocks(ctx, '/x/f', new Set()), LockedError);
    assert.throws(() => checkLocks(ctx, '/x/f', new Set(['urn:uuid:other'])), LockedError);
    checkLocks(ctx, '/x/f', new Set([ex.token]));
    const s1 = lock('/sh', 'shared', '0');
    const s2 = lock('/sh', 'shared', '0');
    await s.addLock(s1);
    await s.addLock(s2);
    assert.throws(() => checkLocks(ctx, '/sh', new Set()), LockedError);
    checkLocks(ctx, '/sh', new Set([s2.token]));
    const parent = lock('/dir', 'exclusive', '0');
    await s.addLock(parent);
    checkLocks(ctx, '/dir/new', new Set());
    assert.throws(() => checkLocks(ctx, '/dir/new', new Set(), { membership: true }), LockedError, 'a new member changes the locked parent');
    const child = lock('/t/a/b', 'exclusive', '0');
    await s.addLock(child);
    checkLocks(ctx, '/t', new Set());
    assert.throws(() => checkLocks(ctx, '/t', new Set(), { tree: true }), LockedError, 'DELETE of /t must own the lock below');
  });
});

describe('DavState dead properties', () => {
  it('set replaces the whole set; removing the last property forgets the resource', async () => {
    const s = await memory();
    assert.equal(s.properties('/p'), undefined);
    await s.setProperties('/p', new Map([[propKey('urn:x', 'a'), prop('a')], [propKey('urn:x', 'b'), prop('b')]]));
    assert.deepEqual([...s.properties('/p')!.keys()].sort(), ['{urn:x}a', '{urn:x}b']);
    await s.setProperties('/p', new Map([[propKey('urn:x', 'b'), prop('b', 'new')]]));
    assert.deepEqual([...s.properties('/p')!.keys()], ['{urn:x}b'], 'a is removed');
    assert.equal(s.properties('/p')!.get('{urn:x}b')!.xml, 'new');
    await s.setProperties('/p', new Map());
    assert.equal(s.properties('/p'), undefined);
  });

  it('move carries the properties of the whole tree and drops its locks', async () => {
    const s = await memory();
    await s.setProperties('/m', new Map([['k', prop('root')]]));
    await s.setProperties('/m/c', new Map([['k', prop('child')]]));
    await s.setProperties('/mx', new Map([['k', prop('sibling')]]));
    await s.setProperties('/n', new Map([['k', prop('overwritten')]]));
    await s.addLock(lock('/m/c', 'exclusive', '0'));
    await s.move('/m', '/n');
    assert.equal(s.properties('/n')!.get('k')!.xml, 'root');
    assert.equal(s.properties('/n/c')!.get('k')!.xml, 'child');
    assert.equal(s.properties('/m'), undefined);
    assert.equal(s.properties('/m/c'), undefined);
    assert.equal(s.properties('/mx')!.get('k')!.xml, 'sibling', 'a name sharing the prefix stays');
    assert.deepEqual(s.locksWithin('/m'), []);
    assert.deepEqual(s.locksWithin('/n'), [], 'locks do not follow a move');
  });

  it('copy duplicates properties (the top only when shallow), never locks; the copies are independent', async () => {
    const s = await memory();
    await s.setProperties('/c', new Map([['k', prop('top')]]));
    await s.setProperties('/c/in', new Map([['k', prop('inner')]]));
    await s.addLock(lock('/c', 'exclusive', 'infinity'));
    await s.copy('/c', '/deep', false);
    await s.copy('/c', '/shallow', true);
    assert.equal(s.properties('/deep/in')!.get('k')!.xml, 'inner');
    assert.equal(s.properties('/shallow')!.get('k')!.xml, 'top');
    assert.equal(s.properties('/shallow/in'), undefined);
    assert.deepEqual(s.locksWithin('/deep'), []);
    assert.equal(s.locksOn('/c').length, 1, 'the source keeps its lock');
    await s.setProperties('/deep', new Map());
    assert.equal(s.properties('/c')!.get('k')!.xml, 'top', 'changing the copy leaves the source');
  });

  it('delete removes properties and locks of the tree, not of a name sharing the prefix', async () => {
    const s = await memory();
    await s.setProperties('/z/a', new Map([['k', prop('a')]]));
    await s.setProperties('/zz', new Map([['k', prop('zz')]]));
    await s.addLock(lock('/z/a', 'shared', '0'));
    await s.delete('/z');
    assert.equal(s.properties('/z/a'), undefined);
    assert.deepEqual(s.locksWithin('/z'), []);
    assert.ok(s.properties('/zz'));
  });

  it('with the sqlite store, properties and locks survive a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'davstate-'));
    try {
      const s = await DavState.open('sqlite', dir);
      const l = lock('/kept', 'exclusive', 'infinity');
      await s.addLock(l);
      // Reloaded under propKey(ns, local), the key PROPPATCH uses.
      await s.setProperties('/kept', new Map([[propKey('urn:x', 'v'), prop('v', '<x>1</x>')]]));
      await s.close();
      const again = await DavState.open('sqlite', dir);
      assert.deepEqual(tokensOf(again.locksCovering('/kept/below')), [l.token]);
      assert.equal(again.properties('/kept')!.get(propKey('urn:x', 'v'))!.xml, '<x>1</x>');
      await again.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
