import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeTable, nodeKey, versionOf, type Node } from '../../src/cachemgr/nodetable.js';

function node(path: string, validator = 'v1'): Node {
  return { key: nodeKey('fs:/x', '', path), path, kind: 'file', size: 1, mtimeMs: 1, birthtimeMs: 1, validator, version: versionOf(validator), checkedAt: Date.now() };
}

test('keys separate upstreams, identities and paths; versions follow validators', () => {
  assert.notEqual(nodeKey('fs:/a', '', '/f'), nodeKey('fs:/b', '', '/f'));
  assert.notEqual(nodeKey('fs:/a', 'alice', '/f'), nodeKey('fs:/a', 'bob', '/f'));
  assert.notEqual(nodeKey('fs:/a', '', '/f'), nodeKey('fs:/a', '', '/g'));
  assert.match(nodeKey('fs:/a', '', '/f'), /^[0-9a-f]{40}$/);
  assert.equal(versionOf('x'), versionOf('x'));
  assert.notEqual(versionOf('x'), versionOf('y'));
});

test('memory table: put, peek, forget, invalidate by prefix', async () => {
  const t = await NodeTable.open('memory', tmpdir());
  const a = node('/d/a'), b = node('/d/sub/b'), c = node('/e/c'), d = node('/dd');
  for (const n of [a, b, c, d]) await t.put(n);
  assert.equal(t.peek(a.key)?.path, '/d/a');
  assert.equal(t.under('/d').length, 2, '/dd is not under /d');
  assert.deepEqual((await t.invalidate('/d')).sort(), [a.key, b.key].sort());
  assert.equal(t.peek(a.key), undefined);
  assert.ok(t.peek(c.key));
  t.forget(c.key);
  assert.equal(t.peek(c.key), undefined);
  await t.close();
});

test('sqlite table persists records across instances (never fresh after a reopen)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'davgate-nt-'));
  try {
    const t1 = await NodeTable.open('sqlite', dir);
    const n = node('/persist', 'validator-7');
    await t1.put(n);
    await t1.close();
    const t2 = await NodeTable.open('sqlite', dir);
    assert.equal(t2.peek(n.key), undefined, 'not in the in-memory front: must be revalidated');
    const loaded = await t2.load(n.key);
    assert.equal(loaded?.version, versionOf('validator-7'));
    await t2.delete(n.key);
    assert.equal(await t2.load(n.key), undefined);
    await t2.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
