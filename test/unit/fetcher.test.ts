import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { BlockStore, blockId } from '../../src/cachemgr/blockstore.js';
import { BlockFetcher, type FetcherOptions } from '../../src/cachemgr/fetcher.js';
import { DiskHealth } from '../../src/cachemgr/diskhealth.js';
import { nodeKey, versionOf, type Node } from '../../src/cachemgr/nodetable.js';
import { SHARED } from '../../src/cachemgr/identity.js';
import { PreconditionFailedError } from '../../src/errors.js';
import { KiB, MiB, fixture, type Fixture } from '../helpers/cache-fixture.js';

const BS = 64 * KiB;

interface Rig extends Fixture { fetcher: BlockFetcher; blocks: BlockStore; changed: string[]; nodeOf: (path: string) => Promise<Node> }

/** `preferredReadBytes`: as if the upstream asked for reads of that size (an object store). */
async function rig(files: Record<string, Buffer>, opts: Partial<FetcherOptions> & { preferredReadBytes?: number }, fn: (r: Rig) => Promise<void>): Promise<void> {
  const f = await fixture(files);
  f.upstream.preferredReadBytes = opts.preferredReadBytes;
  const blocks = new BlockStore(f.cacheDir, { maxBytes: 256 * MiB, highWatermark: 0.9, lowWatermark: 0.7 });
  await blocks.open();
  const changed: string[] = [];
  const fetcher = new BlockFetcher(f.upstream, blocks, {
    blockSize: BS, readAheadMaxBlocks: 4, maxInflightFetches: 8, memoryBytes: MiB, memoryMaxBlockBytes: 16 * KiB, ...opts,
  }, new DiskHealth(3, 30_000, () => {}), (key) => changed.push(key));
  const nodeOf = async (path: string): Promise<Node> => {
    const e = await f.upstream.stat(path);
    return { key: nodeKey(f.upstream.id, '', e.path), path: e.path, kind: e.kind, size: e.size, mtimeMs: e.mtimeMs, birthtimeMs: e.birthtimeMs, validator: e.validator, version: versionOf(e.validator), checkedAt: Date.now() };
  };
  try {
    await fn({ ...f, fetcher, blocks, changed, nodeOf });
  } finally {
    await fetcher.flush();
    await blocks.close();
    await f.close();
  }
}

const tick = () => new Promise((r) => setImmediate(r));

test('single flight: concurrent getdata of one block make one upstream read', async () => {
  const data = randomBytes(3 * BS);
  await rig({ 'f.bin': data }, {}, async ({ fetcher, upstream, gate, nodeOf }) => {
    const node = await nodeOf('/f.bin');
    gate.hold();
    const all = Promise.all(Array.from({ length: 8 }, () => fetcher.getdata(node, 1, SHARED)));
    await tick();
    gate.open();
    for (const b of await all) assert.ok(b.equals(data.subarray(BS, 2 * BS)));
    assert.equal(upstream.count('read'), 1);
    await fetcher.flush();
    assert.ok((await fetcher.getdata(node, 1, SHARED)).equals(data.subarray(BS, 2 * BS)));
    assert.equal(upstream.count('read'), 1, 'then served from the cache');
  });
});

test('locate follows a block: absent, arriving, then on disk (big) or in the memory tier (small)', async () => {
  const big = randomBytes(BS);
  const small = randomBytes(1000);
  await rig({ 'big.bin': big, 'small.bin': small }, {}, async ({ fetcher, gate, nodeOf }) => {
    const b = await nodeOf('/big.bin');
    const s = await nodeOf('/small.bin');
    const id = blockId(b.key, b.version, 0);
    assert.equal(fetcher.locate(b, 0, id), 'absent');
    gate.hold();
    assert.equal(fetcher.demand(b, 0, 0, SHARED), true);
    assert.equal(fetcher.demand(b, 0, 0, SHARED), false, 'on its way: not started twice');
    assert.equal(fetcher.locate(b, 0, id), 'arriving');
    assert.ok(fetcher.arriving(id));
    gate.open();
    await fetcher.getdata(b, 0, SHARED);
    assert.ok(['installing', 'disk'].includes(fetcher.locate(b, 0, id)));
    await fetcher.flush();
    assert.equal(fetcher.locate(b, 0, id), 'disk');
    await fetcher.getdata(s, 0, SHARED);
    assert.equal(fetcher.locate(s, 0, blockId(s.key, s.version, 0)), 'memory');
    assert.ok(fetcher.memoryTierBytes >= 1000);
  });
});

test('the read-ahead window doubles on sequential reads and resets on a random one', async () => {
  await rig({ 'f.bin': randomBytes(32 * BS) }, { readAheadMaxBlocks: 8, maxInflightFetches: 16 }, async ({ fetcher, upstream, nodeOf }) => {
    const node = await nodeOf('/f.bin');
    const fetched: number[] = [];
    for (const i of [0, 1, 2, 3, 4]) {
      fetcher.demand(node, i, i, SHARED);
      await fetcher.flush();
      fetched.push(upstream.count('read'));
    }
    // Window 0, 1, 2, 4, 8 blocks after the one read: 1, +2, +2, +3 (4 was there), +5.
    assert.deepEqual(fetched, [1, 3, 5, 8, 13]);
    fetcher.demand(node, 20, 20, SHARED);
    await fetcher.flush();
    assert.equal(upstream.count('read'), 14, 'a random access fetches only its block');
  });
});

test('a request covering several blocks fetches them all from the start, at most the limit at once', async () => {
  await rig({ 'f.bin': randomBytes(8 * BS) }, { readAheadMaxBlocks: 6, maxInflightFetches: 2 }, async ({ fetcher, upstream, gate, nodeOf }) => {
    const node = await nodeOf('/f.bin');
    gate.hold();
    fetcher.demand(node, 0, 7, SHARED);
    for (let i = 0; i < 5; i++) await tick();
    assert.equal(gate.inflight, 2, 'two upstream reads run, the rest wait for a slot');
    gate.open();
    await fetcher.flush();
    assert.equal(upstream.count('read'), 7, 'block 0 and the 6 of the read-ahead maximum');
    assert.equal(gate.maxInflight, 2);
  });
});

test('getdata hands out its own copy of a pooled fetch buffer', async () => {
  const data = randomBytes(BS);
  await rig({ 'f.bin': data }, {}, async ({ fetcher, nodeOf }) => {
    const node = await nodeOf('/f.bin');
    const mine = await fetcher.getdata(node, 0, SHARED);
    mine.fill(0); // the caller's to scribble on
    assert.ok((await fetcher.getdata(node, 0, SHARED)).equals(data), 'while being installed');
    await fetcher.flush();
    assert.ok((await fetcher.getdata(node, 0, SHARED)).equals(data), 'from the disk');
  });
});

test('an object changed upstream is never served from its old node: the read fails and the node is flagged', async () => {
  await rig({ 'f.bin': randomBytes(BS) }, {}, async ({ fetcher, root, changed, nodeOf }) => {
    const node = await nodeOf('/f.bin');
    await writeFile(join(root, 'f.bin'), randomBytes(BS));
    await utimes(join(root, 'f.bin'), new Date(), new Date(Date.now() + 5000));
    await assert.rejects(fetcher.getdata(node, 0, SHARED), PreconditionFailedError);
    assert.deepEqual(changed, [node.key]);
  });
});

test('a damaged block file falls back to the upstream', async () => {
  const data = randomBytes(2 * BS);
  await rig({ 'f.bin': data }, {}, async ({ fetcher, blocks, upstream, cacheDir, nodeOf }) => {
    const node = await nodeOf('/f.bin');
    await fetcher.getdata(node, 1, SHARED);
    await fetcher.flush();
    const dir = join(cacheDir, 'blocks', node.key.slice(0, 2), node.key);
    const [file] = await readdir(dir);
    const bytes = await readFile(join(dir, file!));
    bytes[10] = bytes[10]! ^ 0xff;
    await writeFile(join(dir, file!), bytes);
    assert.ok((await fetcher.getdata(node, 1, SHARED)).equals(data.subarray(BS)));
    assert.equal(upstream.count('read'), 2);
    await fetcher.flush();
    assert.ok(blocks.has(node.key, node.version, 1), 'installed again');
  });
});

test('dropBlocks keeps only the version asked for', async () => {
  await rig({ 'f.bin': randomBytes(BS) }, {}, async ({ fetcher, blocks, nodeOf }) => {
    const node = await nodeOf('/f.bin');
    await fetcher.getdata(node, 0, SHARED);
    await fetcher.flush();
    await fetcher.dropBlocks(node.key, node.version);
    assert.ok(blocks.has(node.key, node.version, 0));
    await fetcher.dropBlocks(node.key, 'ffffffffffffffff');
    assert.equal(blocks.hasKey(node.key), false);
  });
});

test('spans: consecutive big blocks come in one upstream read each, readable block by block as they arrive', async () => {
  const data = randomBytes(10 * BS);
  await rig({ 'f.bin': data }, { preferredReadBytes: 4 * BS, readAheadMaxBlocks: 8 }, async ({ fetcher, upstream, gate, nodeOf }) => {
    const node = await nodeOf('/f.bin');
    gate.hold();
    assert.equal(fetcher.demand(node, 0, 9, SHARED), true);
    await tick();
    assert.deepEqual(upstream.reads, [[0, 4 * BS], [4 * BS, 4 * BS]], 'the short run at the window edge (block 8) waits');
    const id2 = blockId(node.key, node.version, 2);
    assert.equal(fetcher.locate(node, 2, id2), 'arriving');
    assert.equal(fetcher.arriving(id2)!.buffer.length, BS, 'each block of a span has its own part');
    const read2 = fetcher.getdata(node, 2, SHARED);
    gate.open();
    assert.ok((await read2).equals(data.subarray(2 * BS, 3 * BS)));
    assert.equal(fetcher.demand(node, 9, 9, SHARED), true, 'a run holding the demanded block starts even when short');
    await fetcher.flush();
    for (let i = 0; i < 10; i++) {
      if (i === 8) continue;
      assert.ok((await fetcher.getdata(node, i, SHARED)).equals(data.subarray(i * BS, (i + 1) * BS)), `block ${i}`);
    }
    assert.deepEqual(upstream.reads.slice(2), [[9 * BS, BS]]);
    assert.equal(fetcher.buffers.freeCount > 0, true, 'span buffers go back to the pool once installed');
  });
});

test('spans: a failed span read fails every block of it, and a cached block splits a run', async () => {
  await rig({ 'f.bin': randomBytes(8 * BS) }, { preferredReadBytes: 4 * BS, readAheadMaxBlocks: 8 }, async ({ fetcher, upstream, root, changed, nodeOf }) => {
    const node = await nodeOf('/f.bin');
    await fetcher.getdata(node, 2, SHARED);
    await fetcher.flush();
    upstream.reset();
    await writeFile(join(root, 'f.bin'), randomBytes(8 * BS));
    await utimes(join(root, 'f.bin'), new Date(), new Date(Date.now() + 5000));
    fetcher.demand(node, 0, 7, SHARED);
    await tick();
    assert.deepEqual(upstream.reads, [[0, 2 * BS], [3 * BS, 4 * BS], [7 * BS, BS]], 'block 2 is cached: 0-1, 3-6, and the last block');
    for (const i of [0, 1, 3, 6]) await assert.rejects(fetcher.getdata(node, i, SHARED), PreconditionFailedError, `block ${i}`);
    assert.ok(changed.includes(node.key));
  });
});
