import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SHARED } from '../../src/cachemgr/identity.js';
import { NotFoundError } from '../../src/errors.js';
import { KiB, cacheFixture, collector } from '../helpers/cache-fixture.js';
import type { CacheManager, Node } from '../../src/cachemgr/cachemgr.js';

const BS = 64 * KiB;
const opts = { blockSize: BS, memoryMaxBlockBytes: 16 * KiB };

async function bytesOf(cache: CacheManager, node: Node): Promise<Buffer> {
  const sink = collector();
  await cache.readRangeInto(node, 0, node.size - 1, SHARED, sink);
  return sink.bytes();
}

test('write goes through to the upstream and installs the new node: no stat needed after', async () => {
  const f = await cacheFixture({}, opts);
  try {
    const data = randomBytes(3 * BS);
    const node = await f.cache.write('/new.bin', Readable.from([data]), data.length);
    assert.ok((await readFile(join(f.root, 'new.bin'))).equals(data), 'committed upstream');
    assert.equal(node.size, data.length);
    f.upstream.reset();
    assert.equal((await f.cache.getnode('/new.bin')).version, node.version);
    assert.equal(f.upstream.count('stat'), 0);
  } finally {
    await f.close();
  }
});

test('overwriting a cached file: the new version is served, never the old blocks', async () => {
  const old = randomBytes(2 * BS);
  const f = await cacheFixture({ 'f.bin': old }, opts);
  try {
    const n1 = await f.cache.getnode('/f.bin');
    assert.ok((await bytesOf(f.cache, n1)).equals(old));
    await f.cache.flush();
    const data = randomBytes(2 * BS);
    const n2 = await f.cache.write('/f.bin', Readable.from([data]), data.length);
    assert.notEqual(n2.version, n1.version);
    assert.ok((await bytesOf(f.cache, await f.cache.getnode('/f.bin'))).equals(data));
    assert.equal(f.cache.blockStore.has(n1.key, n1.version, 0), false, 'old blocks dropped');
  } finally {
    await f.close();
  }
});

test('a failed write leaves the cache as it was', async () => {
  const old = randomBytes(1000);
  const f = await cacheFixture({ 'f.bin': old }, opts);
  try {
    const n1 = await f.cache.getnode('/f.bin');
    await assert.rejects(f.cache.write('/f.bin', Readable.from([Buffer.alloc(10)]), 20));
    f.upstream.reset();
    assert.equal(await f.cache.getnode('/f.bin'), n1);
    assert.equal(f.upstream.count('stat'), 0);
  } finally {
    await f.close();
  }
});

test('remove drops the records and blocks of a tree', async () => {
  const f = await cacheFixture({ 'd/a.bin': randomBytes(BS), 'd/e/b.bin': randomBytes(BS) }, opts);
  try {
    const a = await f.cache.getnode('/d/a.bin');
    const b = await f.cache.getnode('/d/e/b.bin');
    await bytesOf(f.cache, a);
    await bytesOf(f.cache, b);
    await f.cache.flush();
    await f.cache.remove('/d');
    assert.equal(f.cache.blockStore.hasKey(a.key), false);
    assert.equal(f.cache.blockStore.hasKey(b.key), false);
    await assert.rejects(f.cache.getnode('/d/e/b.bin'), NotFoundError);
  } finally {
    await f.close();
  }
});

test('move re-keys cached blocks: the moved file is read without fetching again', async () => {
  const data = randomBytes(3 * BS);
  const f = await cacheFixture({ 'd/f.bin': data }, opts);
  try {
    await bytesOf(f.cache, await f.cache.getnode('/d/f.bin'));
    await f.cache.flush();
    await f.cache.mkdir('/e');
    await f.cache.move('/d', '/e/d', false);
    f.upstream.reset();
    const moved = await f.cache.getnode('/e/d/f.bin');
    assert.ok((await bytesOf(f.cache, moved)).equals(data));
    assert.equal(f.upstream.count('read'), 0);
    assert.equal(f.upstream.count('stat'), 1, 'revalidated once: same validator, blocks kept');
    await assert.rejects(f.cache.getnode('/d/f.bin'), NotFoundError);
  } finally {
    await f.close();
  }
});

test('copy, mkdir and setMtime make the next getnode ask the upstream', async () => {
  const f = await cacheFixture({ 'a.txt': 'hello' }, opts);
  try {
    await assert.rejects(f.cache.getnode('/b.txt'), NotFoundError);
    await f.cache.copy('/a.txt', '/b.txt', false, false);
    assert.equal((await f.cache.getnode('/b.txt')).size, 5, 'no longer remembered as absent');
    await assert.rejects(f.cache.getnode('/dir'), NotFoundError);
    await f.cache.mkdir('/dir');
    assert.equal((await f.cache.getnode('/dir')).kind, 'dir');
    await f.cache.getnode('/a.txt');
    const when = Date.UTC(2020, 0, 1);
    await f.cache.setMtime('/a.txt', when);
    assert.equal(Math.round((await stat(join(f.root, 'a.txt'))).mtimeMs), when);
    assert.equal(Math.round((await f.cache.getnode('/a.txt')).mtimeMs), when);
  } finally {
    await f.close();
  }
});
