import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockSink } from '../../src/cachemgr/cachemgr.js';
import { SHARED } from '../../src/cachemgr/identity.js';
import { NotFoundError } from '../../src/errors.js';
import { KiB, MiB, cacheFixture, collector } from '../helpers/cache-fixture.js';

const BS = 64 * KiB;

test('readRangeInto writes the exact bytes of ranges across block boundaries, cold and hot', async () => {
  const data = randomBytes(5 * BS + 123);
  const f = await cacheFixture({ 'f.bin': data }, { blockSize: BS, memoryMaxBlockBytes: 16 * KiB });
  try {
    const node = await f.cache.getnode('/f.bin');
    const ranges: Array<[number, number]> = [[100, 3 * BS + 5], [BS - 1, BS], [2 * BS, 2 * BS], [4 * BS + 7, data.length - 1], [0, data.length - 1]];
    for (const round of ['cold', 'hot']) {
      for (const [s, e] of ranges) {
        const sink = collector();
        await f.cache.readRangeInto(node, s, e, SHARED, sink);
        assert.ok(sink.bytes().equals(data.subarray(s, e + 1)), `${round} ${s}-${e}`);
      }
      await f.cache.flush();
    }
    const reads = f.upstream.count('read');
    assert.ok(reads <= 6, `each block fetched once (${reads} reads)`);
    const empty = collector();
    await f.cache.readRangeInto(node, 10, 9, SHARED, empty);
    assert.equal(empty.chunks.length, 0);
  } finally {
    await f.close();
  }
});

/** A sink that takes its time, and checks that no chunk changed before it said it was done with it. */
function slowSink(delayMs: number): BlockSink & { bytes(): Buffer; writes: number } {
  const out: Buffer[] = [];
  return {
    writes: 0,
    bytes: () => Buffer.concat(out),
    async write(chunk) {
      this.writes++;
      const snapshot = Buffer.from(chunk);
      await new Promise((r) => setTimeout(r, delayMs));
      assert.ok(chunk.equals(snapshot), 'a chunk was reused before the sink was done with it');
      out.push(snapshot);
    },
  };
}

test('a slow sink is awaited before a buffer of the ring is read into again', async () => {
  // 4 MiB blocks: a lone stream reads 2 MiB groups, the next ones 1 MiB or 512 KiB, so each
  // block fills each ring slot more than once; beyond eight streams a ring has one slot.
  const data = randomBytes(8 * MiB);
  const f = await cacheFixture({ 'f.bin': data }, { blockSize: 4 * MiB, memoryMaxBlockBytes: 16 * KiB });
  try {
    const node = await f.cache.getnode('/f.bin');
    const cold = slowSink(1);
    await f.cache.readRangeInto(node, 0, data.length - 1, SHARED, cold);
    assert.ok(cold.bytes().equals(data), 'cold');
    await f.cache.flush();
    // Twelve streams: those beyond the eighth read with one buffer each.
    const sinks = Array.from({ length: 12 }, (_, i) => slowSink(1 + (i % 2)));
    await Promise.all(sinks.map((s, i) => f.cache.readRangeInto(node, i * 1000, data.length - 1, SHARED, s)));
    sinks.forEach((s, i) => assert.ok(s.bytes().equals(data.subarray(i * 1000)), `hot stream ${i}`));
    assert.ok(sinks.some((s) => s.writes >= 16), 'some streams read 512 KiB groups');
    assert.equal(f.upstream.count('read'), 2, 'hot reads come from the block files');
  } finally {
    await f.close();
  }
});

test('a damaged chunk in a block file: the rest of that block comes from the upstream', async () => {
  const data = randomBytes(2 * MiB);
  const f = await cacheFixture({ 'f.bin': data }, { blockSize: 2 * MiB, memoryMaxBlockBytes: 16 * KiB });
  try {
    const node = await f.cache.getnode('/f.bin');
    await f.cache.readRangeInto(node, 0, data.length - 1, SHARED, collector());
    await f.cache.flush();
    const dir = join(f.cacheDir, 'blocks', node.key.slice(0, 2), node.key);
    const [file] = await readdir(dir);
    const bytes = await readFile(join(dir, file!));
    bytes[MiB + 10] = bytes[MiB + 10]! ^ 0xff; // chunk 2 of 4
    await writeFile(join(dir, file!), bytes);
    // Two concurrent streams: the second takes 1 MiB groups, so the damage is found mid-block.
    const a = collector();
    const b = collector();
    await Promise.all([f.cache.readRangeInto(node, 0, data.length - 1, SHARED, a), f.cache.readRangeInto(node, 5, data.length - 1, SHARED, b)]);
    assert.ok(a.bytes().equals(data));
    assert.ok(b.bytes().equals(data.subarray(5)));
    assert.equal(f.upstream.count('read'), 2, 'fetched again once');
  } finally {
    await f.close();
  }
});

test('the next block is opened ahead: its damage is caught, and an abort leaves no block pinned', async () => {
  const data = randomBytes(3 * MiB);
  const f = await cacheFixture({ 'f.bin': data }, { blockSize: MiB, memoryMaxBlockBytes: 16 * KiB });
  try {
    const node = await f.cache.getnode('/f.bin');
    await f.cache.readRangeInto(node, 0, data.length - 1, SHARED, collector());
    await f.cache.flush();
    const dir = join(f.cacheDir, 'blocks', node.key.slice(0, 2), node.key);
    const second = (await readdir(dir)).find((n) => n.split('-')[1] === '1')!;
    const bytes = await readFile(join(dir, second));
    bytes[10] = bytes[10]! ^ 0xff; // the first group of block 1: read while block 0 is written out
    await writeFile(join(dir, second), bytes);
    const sink = collector();
    await f.cache.readRangeInto(node, 0, data.length - 1, SHARED, sink);
    assert.ok(sink.bytes().equals(data));
    assert.equal(f.upstream.count('read'), 4, 'the damaged block fetched again, once');
    await f.cache.flush();
    // The sink fails on the last piece of block 0, when block 1 is already open.
    let n = 0;
    const failing: BlockSink = { write: async (chunk) => { n += chunk.length; if (n >= MiB) throw new Error('client went away'); } };
    await assert.rejects(f.cache.readRangeInto(node, 0, data.length - 1, SHARED, failing), /client went away/);
    await f.cache.purge('/f.bin');
    assert.deepEqual(await readdir(dir).catch(() => []), [], 'every block file dropped: none left pinned');
  } finally {
    await f.close();
  }
});

test('a failing sink ends the read with its error; the next read is whole', async () => {
  const data = randomBytes(4 * MiB);
  const f = await cacheFixture({ 'f.bin': data }, { blockSize: MiB, memoryMaxBlockBytes: 16 * KiB });
  try {
    const node = await f.cache.getnode('/f.bin');
    await f.cache.readRangeInto(node, 0, data.length - 1, SHARED, collector());
    await f.cache.flush();
    let n = 0;
    const failing: BlockSink = { write: async () => { if (++n === 2) throw new Error('client went away'); } };
    await assert.rejects(f.cache.readRangeInto(node, 0, data.length - 1, SHARED, failing), /client went away/);
    assert.equal(n, 2, 'nothing written after the failure');
    const sink = collector();
    await f.cache.readRangeInto(node, 0, data.length - 1, SHARED, sink);
    assert.ok(sink.bytes().equals(data));
  } finally {
    await f.close();
  }
});

test('readRange (pulled): exact bytes, and a consumer may stop early', async () => {
  const data = randomBytes(3 * MiB + 5);
  const f = await cacheFixture({ 'f.bin': data, 'g.bin': 'gone soon' }, { blockSize: MiB, memoryMaxBlockBytes: 16 * KiB });
  try {
    const node = await f.cache.getnode('/f.bin');
    const got: Buffer[] = [];
    for await (const b of f.cache.readRange(node, 7, data.length - 1)) got.push(Buffer.from(b));
    assert.ok(Buffer.concat(got).equals(data.subarray(7)));
    await f.cache.flush();
    for await (const b of f.cache.readRange(node, 0, data.length - 1)) { assert.ok(b.equals(data.subarray(0, b.length))); break; }
    const all: Buffer[] = [];
    for await (const b of f.cache.readRange(node, 0, data.length - 1)) all.push(Buffer.from(b));
    assert.ok(Buffer.concat(all).equals(data));
    // A failure is thrown by the iteration: here the object is gone before its first block came.
    const gone = await f.cache.getnode('/g.bin');
    await rm(join(f.root, 'g.bin'));
    await assert.rejects(async () => { for await (const _ of f.cache.readRange(gone, 0, 10)) void _; }, NotFoundError);
  } finally {
    await f.close();
  }
});
