import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { ListingCache } from '../../src/cachemgr/listings.js';
import type { CacheManager, Node } from '../../src/cachemgr/cachemgr.js';
import { cacheFixture } from '../helpers/cache-fixture.js';

const node = (path: string): Node => ({ key: path, path, kind: 'file', size: 1, mtimeMs: 0, birthtimeMs: 0, validator: 'v', version: 'v', checkedAt: 0 });

test('ListingCache keeps a listing that ran to the end, within its bound', () => {
  const c = new ListingCache(3, () => 60_000);
  const a = c.collector('k/d', '/d');
  a.add(node('/d/x'));
  assert.equal(c.get('k/d'), undefined, 'not before commit');
  a.commit();
  assert.deepEqual(c.get('k/d')?.map((n) => n.path), ['/d/x']);
  const big = c.collector('k/big', '/big');
  for (const p of ['/big/1', '/big/2', '/big/3']) big.add(node(p));
  big.commit();
  assert.equal(c.get('k/big'), undefined, 'too many entries: never kept');
});

test('ListingCache: a forget while a listing runs keeps that listing out', () => {
  const c = new ListingCache(100, () => 60_000);
  const a = c.collector('k/d', '/d');
  a.add(node('/d/x'));
  c.forget('k/other');
  a.commit();
  assert.equal(c.get('k/d'), undefined, 'it may have missed the change');
});

test('ListingCache: forgetWhere matches directories by path; entries expire with the TTL', async () => {
  const c = new ListingCache(100, () => 30);
  for (const p of ['/a', '/a/b', '/c']) { const col = c.collector('k' + p, p); col.commit(); }
  c.forgetWhere((p) => p.startsWith('/a'));
  assert.equal(c.get('k/a'), undefined);
  assert.equal(c.get('k/a/b'), undefined);
  assert.ok(c.get('k/c'));
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(c.get('k/c'), undefined);
});

async function names(cache: CacheManager, dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const n of cache.list(dir)) out.push(n.path);
  return out.sort();
}

test('a listing within the TTL costs no upstream call; changes through the cache invalidate it', async () => {
  const f = await cacheFixture({ 'd/a.txt': 'a', 'd/sub/x.txt': 'x', 'e/keep.txt': 'k' });
  try {
    const { cache, upstream } = f;
    assert.deepEqual(await names(cache, '/d'), ['/d/a.txt', '/d/sub']);
    assert.deepEqual(await names(cache, '/d'), ['/d/a.txt', '/d/sub']);
    assert.equal(upstream.count('list'), 1);
    const listed = () => upstream.count('list');

    await cache.write('/d/b.txt', Readable.from([Buffer.from('b')]), 1);
    assert.deepEqual(await names(cache, '/d'), ['/d/a.txt', '/d/b.txt', '/d/sub']);
    assert.equal(listed(), 2, 'write');

    await cache.remove('/d/a.txt');
    assert.deepEqual(await names(cache, '/d'), ['/d/b.txt', '/d/sub']);
    assert.equal(listed(), 3, 'remove');

    assert.deepEqual(await names(cache, '/d/sub'), ['/d/sub/x.txt']);
    await cache.move('/d/sub', '/e/sub', false);
    assert.deepEqual(await names(cache, '/d'), ['/d/b.txt']);
    assert.deepEqual(await names(cache, '/e'), ['/e/keep.txt', '/e/sub']);
    assert.deepEqual(await names(cache, '/e/sub'), ['/e/sub/x.txt']);
    await assert.rejects(names(cache, '/d/sub'), 'the moved directory\'s listing is gone too');

    const before = listed();
    await cache.mkdir('/d/new');
    assert.deepEqual(await names(cache, '/d'), ['/d/b.txt', '/d/new']);
    assert.equal(listed(), before + 1, 'mkdir');
    assert.deepEqual(await names(cache, '/d'), ['/d/b.txt', '/d/new']);
    assert.equal(listed(), before + 1, 'and cached again');
  } finally {
    await f.close();
  }
});

test('list given a node lists the same as given its path', async () => {
  const f = await cacheFixture({ 'd/a.txt': 'a' });
  try {
    const dir = await f.cache.getnode('/d');
    const viaNode: string[] = [];
    for await (const n of f.cache.list(dir)) viaNode.push(n.path);
    assert.deepEqual(viaNode, await names(f.cache, '/d'));
    assert.equal(f.upstream.count('list'), 1, 'one listing cached for both');
  } finally {
    await f.close();
  }
});
