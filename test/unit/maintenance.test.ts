import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SHARED } from '../../src/cachemgr/identity.js';
import { blockStats, warm } from '../../src/cachemgr/maintenance.js';
import { KiB, cacheFixture, collector } from '../helpers/cache-fixture.js';

const BS = 64 * KiB;
const opts = { blockSize: BS, memoryMaxBlockBytes: 16 * KiB };

test('residency: a range is a miss, partial, then a hit as its blocks are cached', async () => {
  const f = await cacheFixture({ 'f.bin': randomBytes(4 * BS), 'small.txt': 'tiny' }, opts);
  try {
    const { cache } = f;
    const node = await cache.getnode('/f.bin');
    assert.equal(cache.residency(node, 0, 4 * BS - 1), 'miss');
    await cache.readRangeInto(node, BS, 2 * BS - 1, SHARED, collector());
    await cache.flush();
    assert.equal(cache.residency(node, 0, 4 * BS - 1), 'partial');
    assert.equal(cache.residency(node, BS + 5, BS + 10), 'hit');
    assert.equal(cache.residency(node, 10, 9), 'hit', 'an empty range');
    const small = await cache.getnode('/small.txt');
    await cache.getdata(small, 0);
    assert.equal(cache.residency(small, 0, 3), 'hit', 'in the memory tier');
  } finally {
    await f.close();
  }
});

test('warm reads a tree into the cache; reading it afterwards costs no upstream read', async () => {
  const f = await cacheFixture({ 'd/a.bin': randomBytes(3 * BS), 'd/e/b.bin': randomBytes(BS + 1), 'd/c.txt': 'c' }, opts);
  try {
    let started = 0;
    const progress = await warm(f.cache, '/d', { concurrency: 2, onStart: (files) => { started = files; } });
    assert.equal(started, 3);
    assert.equal(progress.files, 3);
    assert.equal(progress.doneBytes, progress.totalBytes);
    assert.deepEqual(progress.failed, []);
    const reads = f.upstream.count('read');
    const b = await f.cache.getnode('/d/e/b.bin');
    assert.equal(f.cache.residency(b, 0, b.size - 1), 'hit');
    await f.cache.readRangeInto(b, 0, b.size - 1, SHARED, collector());
    assert.equal(f.upstream.count('read'), reads);
    const stats = blockStats(f.cache.blockStore);
    assert.equal(stats.blocks, 3 + 2 + 1);
    assert.ok(stats.bytes > 4 * BS && stats.fill > 0 && stats.oldestBlockUsedAt);
  } finally {
    await f.close();
  }
});

test('purge drops the blocks and records of a tree, and only those', async () => {
  const f = await cacheFixture({ 'd/a.bin': randomBytes(BS), 'd/e/b.bin': randomBytes(BS), 'keep.bin': randomBytes(BS) }, opts);
  try {
    const { cache } = f;
    await warm(cache, '/', { concurrency: 2 });
    const a = await cache.getnode('/d/a.bin');
    const b = await cache.getnode('/d/e/b.bin');
    const keep = await cache.getnode('/keep.bin');
    assert.equal(await cache.purge('/d'), 2);
    assert.equal(cache.blockStore.hasKey(a.key), false);
    assert.equal(cache.blockStore.hasKey(b.key), false);
    assert.ok(cache.blockStore.hasKey(keep.key));
    f.upstream.reset();
    await cache.getnode('/d/a.bin');
    assert.equal(f.upstream.count('stat'), 1, 'its record is gone: asked again');
  } finally {
    await f.close();
  }
});

test('invalidate: the next access under the prefix goes upstream; blocks stay', async () => {
  const f = await cacheFixture({ 'd/a.bin': randomBytes(BS), 'other.txt': 'o' }, opts);
  try {
    const { cache } = f;
    await warm(cache, '/', { concurrency: 1 });
    const a = await cache.getnode('/d/a.bin');
    await cache.getnode('/other.txt');
    assert.equal(await cache.invalidate('/d'), 2, '/d and /d/a.bin');
    f.upstream.reset();
    await cache.getnode('/other.txt');
    assert.equal(f.upstream.count('stat'), 0, 'outside the prefix: still fresh');
    const again = await cache.getnode('/d/a.bin');
    assert.equal(f.upstream.count('stat'), 1);
    assert.equal(again.version, a.version);
    assert.equal(cache.residency(again, 0, BS - 1), 'hit', 'same version: its blocks are still good');
  } finally {
    await f.close();
  }
});
