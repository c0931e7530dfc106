import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir, stat, symlink, writeFile, readFile, mkdir, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BlockStore, CHUNK } from '../../src/cachemgr/blockstore.js';
import { CacheInUseError } from '../../src/errors.js';

const KEY = 'ab'.repeat(20);
const KEY2 = 'cd'.repeat(20);
const VER = '0123456789abcdef';

async function withStore(opts: Partial<{ maxBytes: number; high: number; low: number }>, fn: (s: BlockStore, root: string) => Promise<void>): Promise<void> {
  const root = join(await mkdtemp(join(tmpdir(), 'davgate-bs-')), 'cache');
  const s = new BlockStore(root, { maxBytes: opts.maxBytes ?? 1 << 30, highWatermark: opts.high ?? 0.9, lowWatermark: opts.low ?? 0.5 });
  await s.open();
  try {
    await fn(s, root);
  } finally {
    await s.close();
    await rm(join(root, '..'), { recursive: true, force: true });
  }
}

test('install then read returns the same bytes; the root is 0700 and paths are hex only', async () => {
  await withStore({}, async (s, root) => {
    const data = randomBytes(5000);
    await s.install(KEY, VER, 3, data);
    assert.ok(s.has(KEY, VER, 3));
    assert.deepEqual(await s.read(KEY, VER, 3, 5000), data);
    assert.equal((await stat(root)).mode & 0o777, 0o700);
    const files = await readdir(join(root, 'blocks'), { recursive: true });
    for (const f of files) assert.match(f, /^[0-9a-f/-]+$/);
    assert.equal(s.bytes, 5000 + 4, 'data plus one chunk checksum');
  });
});

test('a block of another version is a miss', async () => {
  await withStore({}, async (s) => {
    await s.install(KEY, VER, 0, Buffer.from('old'));
    assert.equal(await s.read(KEY, 'fedcba9876543210', 0, 3), undefined);
  });
});

test('a corrupted or truncated block is dropped, never returned', async () => {
  await withStore({}, async (s, root) => {
    await s.install(KEY, VER, 0, Buffer.alloc(4096, 1));
    await s.install(KEY, VER, 1, Buffer.alloc(4096, 2));
    const dir = join(root, 'blocks', KEY.slice(0, 2), KEY);
    const [f0, f1] = (await readdir(dir)).sort();
    const bad = await readFile(join(dir, f0!));
    bad[100] = bad[100]! ^ 0xff;
    await writeFile(join(dir, f0!), bad);
    await writeFile(join(dir, f1!), Buffer.alloc(10, 2));
    assert.equal(await s.read(KEY, VER, 0, 4096), undefined);
    assert.equal(await s.read(KEY, VER, 1, 4096), undefined);
    assert.equal(s.has(KEY, VER, 0), false);
    assert.equal(s.has(KEY, VER, 1), false);
    assert.equal(s.bytes, 0);
  });
});

test('a symlink planted in place of a block is not followed', async () => {
  await withStore({}, async (s, root) => {
    await s.install(KEY, VER, 0, Buffer.from('real'));
    const dir = join(root, 'blocks', KEY.slice(0, 2), KEY);
    const [f] = await readdir(dir);
    const outside = join(root, '..', 'outside');
    await writeFile(outside, 'real');
    await rm(join(dir, f!));
    await symlink(outside, join(dir, f!));
    assert.equal(await s.read(KEY, VER, 0, 4), undefined);
  });
});

test('eviction keeps bytes under the high watermark, down to the low one, LRU first', async () => {
  // 996 bytes of data + a 4-byte checksum table: 1000 bytes per block file.
  await withStore({ maxBytes: 10_000, high: 0.8, low: 0.5 }, async (s) => {
    for (let i = 0; i < 8; i++) await s.install(KEY, VER, i, Buffer.alloc(996, i));
    assert.ok(s.bytes <= 8000);
    // Touch block 0 so it is the most recently used.
    assert.ok(await s.read(KEY, VER, 0, 996));
    await s.install(KEY, VER, 8, Buffer.alloc(996, 8));
    assert.ok(s.bytes <= 8000, `bytes ${s.bytes}`);
    assert.ok(s.bytes <= 5000 + 1000, 'evicted down to the low watermark');
    assert.ok(s.has(KEY, VER, 0), 'recently used block kept');
    assert.ok(!s.has(KEY, VER, 1), 'least recently used block evicted');
  });
});

test('a pinned block is not evicted', async () => {
  await withStore({ maxBytes: 4000, high: 0.75, low: 0.25 }, async (s) => {
    await s.install(KEY, VER, 0, Buffer.alloc(1000));
    await s.install(KEY, VER, 1, Buffer.alloc(1000));
    // Start a read (pins block 0) and install concurrently.
    const reading = s.read(KEY, VER, 0, 1000);
    await s.install(KEY, VER, 2, Buffer.alloc(1000));
    assert.ok(await reading);
  });
});

test('when pinned blocks leave no room, a new block is not kept and the cache stays under its limit', async () => {
  await withStore({ maxBytes: 2200, high: 0.95, low: 0.5 }, async (s) => {
    await s.install(KEY, VER, 0, Buffer.alloc(1000));
    await s.install(KEY, VER, 1, Buffer.alloc(1000));
    const r0 = await s.openBlock(KEY, VER, 0, 1000);
    const r1 = await s.openBlock(KEY, VER, 1, 1000);
    assert.ok(r0 && r1);
    await s.install(KEY, VER, 2, Buffer.alloc(1000));
    assert.ok(!s.has(KEY, VER, 2), 'not kept: both other blocks are being read');
    assert.ok(s.bytes <= 2200, `bytes ${s.bytes}`);
    await r0.close();
    await r1.close();
    await s.install(KEY, VER, 2, Buffer.alloc(1000));
    assert.ok(s.has(KEY, VER, 2), 'kept once a block could be evicted');
    assert.ok(s.bytes <= 2200, `bytes ${s.bytes}`);
  });
});

test('the index is rebuilt from the block files after a restart; junk is removed', async () => {
  const root = join(await mkdtemp(join(tmpdir(), 'davgate-bs-')), 'cache');
  const a = new BlockStore(root, { maxBytes: 1 << 20, highWatermark: 0.9, lowWatermark: 0.5 });
  await a.open();
  await a.install(KEY, VER, 0, Buffer.from('persisted'));
  await a.close();
  await mkdir(join(root, 'blocks', 'zz-not-hex'), { recursive: true });
  await writeFile(join(root, 'tmp', 'half-written'), 'x').catch(() => {});
  const b = new BlockStore(root, { maxBytes: 1 << 20, highWatermark: 0.9, lowWatermark: 0.5 });
  await b.open();
  try {
    assert.equal((await b.read(KEY, VER, 0, 9))?.toString(), 'persisted');
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
    assert.ok(!(await readdir(join(root, 'blocks'))).includes('zz-not-hex'));
  } finally {
    await b.close();
    await rm(join(root, '..'), { recursive: true, force: true });
  }
});

test('a clean close saves the index: the next open reads it instead of scanning, LRU order kept', async () => {
  const root = join(await mkdtemp(join(tmpdir(), 'davgate-bs-')), 'cache');
  const opts = { maxBytes: 1 << 20, highWatermark: 0.9, lowWatermark: 0.5 };
  const a = new BlockStore(root, opts);
  await a.open();
  for (let i = 0; i < 5; i++) await a.install(KEY, VER, i, Buffer.alloc(100, i));
  await a.read(KEY, VER, 0, 100); // now the most recently used
  const order = a.list().map((b) => b.index);
  await a.close();
  assert.ok((await readdir(root)).includes('blocks.index'));
  // A block file added behind the store's back is not in the index: only a scan would find it.
  const dir = join(root, 'blocks', KEY2.slice(0, 2), KEY2);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${VER}-0-00000000`), 'x');
  const b = new BlockStore(root, opts);
  await b.open();
  try {
    assert.deepEqual(b.list().map((x) => x.index), order);
    assert.equal(b.hasKey(KEY2), false, 'loaded from the index, not scanned');
    assert.equal((await b.read(KEY, VER, 3, 100))?.[0], 3);
    assert.ok(!(await readdir(root)).includes('blocks.index'), 'consumed at open: a crash now leaves none');
  } finally {
    await b.close();
  }
  // Without an index (a crash), the files are scanned.
  await rm(join(root, 'blocks.index'));
  const c = new BlockStore(root, opts);
  await c.open();
  try {
    assert.equal(c.count, 6, 'the scan finds the file the index did not list');
    assert.equal(c.hasKey(KEY2), true);
    assert.equal(await c.read(KEY2, VER, 0, 1), undefined, 'and its checksum still decides whether it is served');
  } finally {
    await c.close();
    await rm(join(root, '..'), { recursive: true, force: true });
  }
});

test('a damaged or truncated index is ignored and the files are scanned', async () => {
  const root = join(await mkdtemp(join(tmpdir(), 'davgate-bs-')), 'cache');
  const opts = { maxBytes: 1 << 20, highWatermark: 0.9, lowWatermark: 0.5 };
  const a = new BlockStore(root, opts);
  await a.open();
  for (let i = 0; i < 3; i++) await a.install(KEY, VER, i, Buffer.alloc(100, i));
  await a.close();
  const good = await readFile(join(root, 'blocks.index'));
  const damaged = [
    good.subarray(0, good.length - 5), // cut short
    Buffer.concat([good, Buffer.from(`${KEY} ${VER} 9 104 1234abcd 0\n`)]), // a line the checksum does not cover
    Buffer.from(good.toString('latin1').replace(`${KEY} ${VER} 1`, `../../x ${VER} 1`), 'latin1'), // not hex
  ];
  try {
    for (const bad of damaged) {
      await writeFile(join(root, 'blocks.index'), bad);
      const s = new BlockStore(root, opts);
      await s.open();
      try {
        assert.deepEqual(s.list().map((b) => b.index).sort(), [0, 1, 2]);
        assert.equal(s.has(KEY, VER, 9), false);
      } finally {
        await s.close();
      }
    }
  } finally {
    await rm(join(root, '..'), { recursive: true, force: true });
  }
});

test('a close whose index cannot be written still closes and releases the directory', async () => {
  const top = await mkdtemp(join(tmpdir(), 'davgate-bs-'));
  const root = join(top, 'cache');
  const opts = { maxBytes: 1 << 20, highWatermark: 0.9, lowWatermark: 0.5 };
  const a = new BlockStore(root, opts);
  await a.open();
  await a.install(KEY, VER, 0, Buffer.alloc(10, 1));
  await rm(top, { recursive: true, force: true }); // the cache directory went away under us
  await a.close();
  assert.equal(await BlockStore.owner(root), undefined);
  const b = new BlockStore(root, opts);
  await b.open();
  try {
    assert.equal(b.count, 0);
  } finally {
    await b.close();
    await rm(top, { recursive: true, force: true });
  }
});

test('read-only opens leave a saved index in place, and drop it when they changed the store', async () => {
  const root = join(await mkdtemp(join(tmpdir(), 'davgate-bs-')), 'cache');
  const opts = { maxBytes: 1 << 20, highWatermark: 0.9, lowWatermark: 0.5 };
  const a = new BlockStore(root, opts);
  await a.open();
  await a.install(KEY, VER, 0, Buffer.alloc(100, 1));
  await a.close();
  const saved = await readFile(join(root, 'blocks.index'));
  const ro = new BlockStore(root, opts);
  await ro.open({ readOnly: true });
  await ro.close();
  assert.deepEqual(await readFile(join(root, 'blocks.index')), saved);
  const repair = new BlockStore(root, opts);
  await repair.open({ readOnly: true, scan: true });
  repair.drop(repair.list()[0]!, true);
  await repair.close();
  try {
    assert.ok(!(await readdir(root)).includes('blocks.index'), 'stale after the drop');
  } finally {
    await rm(join(root, '..'), { recursive: true, force: true });
  }
});

test('one process per cache directory: a live owner refuses a second store', async () => {
  await withStore({}, async (_s, root) => {
    await writeFile(join(root, 'LOCK'), String(process.ppid)); // a live process other than us
    const other = new BlockStore(root, { maxBytes: 1 << 20, highWatermark: 0.9, lowWatermark: 0.5 });
    await assert.rejects(other.open(), CacheInUseError);
    await writeFile(join(root, 'LOCK'), String(process.pid));
  });
});

test('rekey moves a node\'s blocks to a new key without copying', async () => {
  await withStore({}, async (s) => {
    await s.install(KEY, VER, 0, Buffer.from('moved'));
    await s.rekey(KEY, KEY2);
    assert.equal(s.has(KEY, VER, 0), false);
    assert.equal((await s.read(KEY2, VER, 0, 5))?.toString(), 'moved');
  });
});

test('dropKey keeps only the current version', async () => {
  await withStore({}, async (s) => {
    await s.install(KEY, VER, 0, Buffer.from('old'));
    await s.install(KEY, 'fedcba9876543210', 0, Buffer.from('new'));
    await s.dropKey(KEY, 'fedcba9876543210');
    assert.equal(s.has(KEY, VER, 0), false);
    assert.ok(s.has(KEY, 'fedcba9876543210', 0));
  });
});

test('a multi-chunk block is read chunk by chunk, each verified; a damaged chunk drops the block', async () => {
  await withStore({}, async (s, root) => {
    const data = randomBytes(CHUNK * 2 + 123);
    await s.install(KEY, VER, 0, data);
    const reader = await s.openBlock(KEY, VER, 0, data.length);
    assert.ok(reader);
    assert.equal(reader.chunks, 3);
    assert.deepEqual(await reader.chunk(2), data.subarray(2 * CHUNK));
    await reader.close();
    const dir = join(root, 'blocks', KEY.slice(0, 2), KEY);
    const [f] = await readdir(dir);
    const fh = await open(join(dir, f!), 'r+');
    await fh.write(Buffer.from([1, 2, 3]), 0, 3, CHUNK + 10);
    await fh.close();
    const again = await s.openBlock(KEY, VER, 0, data.length);
    assert.ok(again, 'the checksum table itself is intact');
    assert.deepEqual(await again.chunk(0), data.subarray(0, CHUNK), 'an undamaged chunk is served');
    assert.equal(await again.chunk(1), undefined, 'the damaged chunk is not');
    await again.close();
    assert.equal(s.has(KEY, VER, 0), false, 'and the block is dropped');
  });
});
