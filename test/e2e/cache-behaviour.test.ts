import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readdir, readFile, stat, writeFile, truncate, open, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { startGateway, type TestGateway } from '../helpers/inproc.js';
import { CHUNK } from '../../src/cachemgr/blockstore.js';

// Cache behaviour, counted at the upstream: every number asserted here is a count
// of calls that reached the real directory upstream.

const MiB = 1024 * 1024;
const BLOCK = 4 * MiB;

/** Write `size` pseudo-random bytes (fast: a repeated 1 MiB random pattern with a per-MiB salt). */
async function writeBigFile(path: string, size: number): Promise<string> {
  const pattern = randomBytes(MiB);
  const hash = createHash('sha256');
  const out = createWriteStream(path);
  for (let off = 0; off < size; off += MiB) {
    const chunk = Buffer.from(pattern.subarray(0, Math.min(MiB, size - off)));
    chunk.writeUInt32LE(off / MiB, 0);
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
  return hash.digest('hex');
}

/** GET through the gateway, hashing the body without keeping it. */
function getHash(url: string, headers: Record<string, string> = {}): Promise<{ status: number; hash: string; bytes: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      const keep: Buffer[] = [];
      res.on('data', (c: Buffer) => { hash.update(c); bytes += c.length; if (bytes <= 65536) keep.push(c); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, hash: hash.digest('hex'), bytes, body: Buffer.concat(keep) }));
      res.on('error', reject);
    }).on('error', reject).end();
  });
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
  return out;
}

describe('cache behaviour counted at the upstream', () => {
  let gw: TestGateway;
  let bigHash: string;
  const BIG = 300 * MiB;

  before(async () => {
    gw = await startGateway({ cache: { ttl: 60_000, blockSize: BLOCK } });
    bigHash = await writeBigFile(join(gw.upstreamDir, 'big.bin'), BIG);
    await writeFile(join(gw.upstreamDir, 'small.txt'), 'hello davgate\n');
  });
  after(() => gw.close());

  test('a second read of a file makes 0 upstream reads', async () => {
    gw.upstream.reset();
    const first = await getHash(gw.url + 'small.txt');
    assert.equal(first.body.toString(), 'hello davgate\n');
    assert.equal(gw.upstream.count('read'), 1);
    gw.upstream.reset();
    const second = await getHash(gw.url + 'small.txt');
    assert.equal(second.body.toString(), 'hello davgate\n');
    assert.equal(gw.upstream.count('read'), 0);
  });

  test('a 1-byte Range at 200 MiB of a 300 MiB file reads exactly one block', async () => {
    gw.upstream.reset();
    const res = await getHash(gw.url + 'big.bin', { range: `bytes=${200 * MiB}-${200 * MiB}` });
    assert.equal(res.status, 206);
    assert.equal(res.bytes, 1);
    // Byte 200 MiB is the first byte of MiB #200, overwritten by its salt (LE 200 -> 0xc8).
    assert.equal(res.body[0], 200);
    assert.equal(gw.upstream.count('read'), 1);
    assert.deepEqual(gw.upstream.reads, [[200 * MiB, BLOCK]]);
  });

  test('50 concurrent cold readers cause exactly one upstream read per block', async () => {
    const size = 40 * MiB;
    const h = await writeBigFile(join(gw.upstreamDir, 'shared.bin'), size);
    gw.upstream.reset();
    const results = await Promise.all(Array.from({ length: 50 }, () => getHash(gw.url + 'shared.bin')));
    for (const r of results) {
      assert.equal(r.status, 200);
      assert.equal(r.hash, h);
    }
    const blocks = size / BLOCK;
    assert.equal(gw.upstream.count('read'), blocks);
    const offsets = new Set(gw.upstream.reads.map(([o]) => o));
    assert.equal(offsets.size, blocks, 'every block read once, none twice');
  });

  test('300 MiB streams byte-identical, then from the cache with 0 upstream reads', async () => {
    gw.upstream.reset();
    const cold = await getHash(gw.url + 'big.bin');
    assert.equal(cold.hash, bigHash);
    assert.equal(cold.bytes, BIG);
    assert.ok(gw.upstream.count('read') <= BIG / BLOCK, `at most one read per block, got ${gw.upstream.count('read')}`);
    gw.upstream.reset();
    const hot = await getHash(gw.url + 'big.bin');
    assert.equal(hot.hash, bigHash);
    assert.equal(gw.upstream.count('read'), 0);
  });

  test('a truncated or corrupted block file is never served: it is fetched again', async () => {
    const size = 12 * MiB;
    const h = await writeBigFile(join(gw.upstreamDir, 'victim.bin'), size);
    assert.equal((await getHash(gw.url + 'victim.bin')).hash, h);
    // Blocks are served first and written to the cache disk meanwhile: wait for the installs.
    await gw.gateway.cache.flush();
    const before = new Set(await listFiles(join(gw.cacheDir, 'blocks')));
    // Find this file's three blocks: the newest key directory with 3 block files.
    const byDir = new Map<string, string[]>();
    for (const f of before) { const d = f.slice(0, f.lastIndexOf('/')); byDir.set(d, [...(byDir.get(d) ?? []), f]); }
    let victims: string[] = [];
    for (const files of byDir.values()) {
      if (files.length !== 3) continue;
      const sizes = await Promise.all(files.map(async (f) => (await stat(f)).size));
      // A block file is its data, then one 4-byte CRC-32 per chunk.
      if (sizes.every((s) => s === BLOCK + 4 * (BLOCK / CHUNK))) {
        const first = await readFile(files.find((f) => /-0-[0-9a-f]{8}$/.test(f))!);
        if (first.readUInt32LE(0) === 0 && first.subarray(4, 64).equals((await readFile(join(gw.upstreamDir, 'victim.bin'))).subarray(4, 64))) victims = files.sort();
      }
    }
    assert.equal(victims.length, 3, 'found the block files of victim.bin');
    const corrupt = victims.find((f) => /-1-[0-9a-f]{8}$/.test(f))!;
    const truncated = victims.find((f) => /-2-[0-9a-f]{8}$/.test(f))!;
    const fh = await open(corrupt, 'r+');
    await fh.write(Buffer.from([0xff, 0xee, 0xdd]), 0, 3, 12345);
    await fh.close();
    await truncate(truncated, 1000);
    gw.upstream.reset();
    const again = await getHash(gw.url + 'victim.bin');
    assert.equal(again.hash, h, 'bytes served are the upstream bytes');
    assert.deepEqual(gw.upstream.reads.map(([o]) => o).sort((a, b) => a - b), [BLOCK, 2 * BLOCK], 'exactly the two damaged blocks were fetched again');
    const metrics = await (await fetch(gw.adminUrl + 'metrics')).text();
    assert.match(metrics, /davgate_cache_corrupt_blocks_total 2/);
  });
});

describe('coherence and eviction', () => {
  test('a change made directly in the upstream directory is served after the TTL', async (t) => {
    const gw = await startGateway({ cache: { ttl: 1000 } });
    t.after(() => gw.close());
    const file = join(gw.upstreamDir, 'doc.txt');
    await writeFile(file, 'version one');
    assert.equal((await getHash(gw.url + 'doc.txt')).body.toString(), 'version one');
    await writeFile(file, 'version two, longer');
    // Within the TTL the node is not revalidated (AFS: no upstream round trip until invalidated).
    assert.equal((await getHash(gw.url + 'doc.txt')).body.toString(), 'version one');
    await new Promise((r) => setTimeout(r, 1100));
    const after = await getHash(gw.url + 'doc.txt');
    assert.equal(after.body.toString(), 'version two, longer');
    // Admin invalidation makes a change visible at once.
    await writeFile(file, 'version three');
    await fetch(gw.adminUrl + 'invalidate?path=/doc.txt', { method: 'POST' });
    assert.equal((await getHash(gw.url + 'doc.txt')).body.toString(), 'version three');
  });

  test('a file changed within the TTL whose blocks are not cached is served whole in its new version', async (t) => {
    const gw = await startGateway({ cache: { ttl: 60_000 } });
    t.after(() => gw.close());
    const file = join(gw.upstreamDir, 'changing.txt');
    await writeFile(file, 'first content');
    const head = await fetch(gw.url + 'changing.txt', { method: 'HEAD' });
    assert.equal(head.headers.get('content-length'), '13');
    await writeFile(file, 'second, different content');
    const res = await getHash(gw.url + 'changing.txt');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'second, different content');
  });

  test('eviction keeps the cache under its limit while a large file streams', async (t) => {
    const limit = 16 * MiB;
    const gw = await startGateway({ cache: { maxBytes: limit, blockSize: MiB } });
    t.after(() => gw.close());
    const h = await writeBigFile(join(gw.upstreamDir, 'stream.bin'), 96 * MiB);
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        let sum = 0;
        for (const f of await listFiles(join(gw.cacheDir, 'blocks')).catch(() => [])) sum += (await stat(f).catch(() => ({ size: 0 }))).size;
        peak = Math.max(peak, sum, gw.gateway.cache.cacheBytes);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const res = await getHash(gw.url + 'stream.bin');
    sampling = false;
    await sampler;
    assert.equal(res.hash, h);
    assert.ok(peak > 0, 'the cache was used');
    assert.ok(peak <= limit, `cache peaked at ${peak} bytes, limit ${limit}`);
    assert.ok(gw.gateway.cache.cacheBytes <= limit);
  });

  test('a restarted gateway with the sqlite node table reuses its blocks without downloading again', async (t) => {
    const dirs = { upstreamDir: await mkdtemp(join(tmpdir(), 'davgate-up-')), cacheDir: await mkdtemp(join(tmpdir(), 'davgate-cache-')) };
    let second: Awaited<ReturnType<typeof startGateway>> | undefined;
    // One hook: the gateway saves its block index at close, so it closes before the directories go.
    t.after(async () => {
      await second?.close();
      await Promise.all([rm(dirs.upstreamDir, { recursive: true, force: true }), rm(dirs.cacheDir, { recursive: true, force: true })]);
    });
    const first = await startGateway({ cache: { nodeTable: 'sqlite' } }, dirs);
    const h = await writeBigFile(join(first.upstreamDir, 'keep.bin'), 9 * MiB);
    assert.equal((await getHash(first.url + 'keep.bin')).hash, h);
    await first.gateway.close();
    second = await startGateway({ cache: { nodeTable: 'sqlite' } }, dirs);
    const again = await getHash(second.url + 'keep.bin');
    assert.equal(again.hash, h);
    assert.equal(second.upstream.count('read'), 0);
  });
});
