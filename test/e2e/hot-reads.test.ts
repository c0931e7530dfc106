import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'node:http';
import { startGateway, type TestGateway } from '../helpers/inproc.js';

// Hot reads from block files: read in groups of chunks whose size depends on how many streams
// run (1, 2-3, more), through pooled buffers. Every byte served is compared with the source,
// for ranges that start and end anywhere, alone and side by side, and after clients that went
// away mid-stream (their buffers go back to the pool).

const MiB = 1024 * 1024;

function get(url: string, range?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { headers: range ? { range } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject).end();
  });
}

/** A GET whose client disconnects after `after` bytes. */
function abandon(url: string, after: number): Promise<void> {
  return new Promise((resolve) => {
    const req = request(url, (res) => {
      let got = 0;
      res.on('data', (c: Buffer) => { got += c.length; if (got >= after) req.destroy(); });
      res.on('close', () => resolve());
      res.on('error', () => resolve());
    });
    req.on('error', () => resolve());
    req.end();
  });
}

/** Deterministic pseudo-random numbers (the failing case can be replayed). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('hot reads from block files', () => {
  let gw: TestGateway;
  const files = new Map<string, Buffer>();

  before(async () => {
    gw = await startGateway({ cache: { ttl: 60_000, blockSize: 4 * MiB } });
    for (const [name, size] of [['a.bin', 13 * MiB + 12345], ['b.bin', 9 * MiB - 1], ['c.bin', 6 * MiB + 1]] as const) {
      const data = randomBytes(size);
      files.set(name, data);
      await writeFile(join(gw.upstreamDir, name), data);
      assert.ok((await get(gw.url + name)).body.equals(data)); // cold: fills the cache
    }
    await gw.gateway.cache.flush();
  });
  after(() => gw.close());

  test('whole files and 60 random ranges are byte-exact, one stream at a time', async () => {
    gw.upstream.reset();
    for (const [name, data] of files) assert.ok((await get(gw.url + name)).body.equals(data), name);
    const next = rng(42);
    for (let i = 0; i < 60; i++) {
      const [name, data] = [...files][i % files.size]!;
      const a = Math.floor(next() * data.length);
      const b = Math.min(data.length - 1, a + Math.floor(next() * 5 * MiB));
      const r = await get(gw.url + name, `bytes=${a}-${b}`);
      assert.equal(r.status, 206);
      assert.ok(r.body.equals(data.subarray(a, b + 1)), `${name} bytes=${a}-${b}`);
    }
    assert.equal(gw.upstream.count('read'), 0, 'all from the cache');
  });

  test('2, 3 and 8 streams side by side, with clients leaving mid-stream, stay byte-exact', async () => {
    const next = rng(7);
    for (const streams of [2, 3, 8]) {
      const jobs: Array<Promise<void>> = [];
      for (let s = 0; s < streams; s++) {
        const [name, data] = [...files][s % files.size]!;
        if (s % 3 === 2) { jobs.push(abandon(gw.url + name, Math.floor(next() * data.length))); continue; }
        const a = s % 2 ? Math.floor(next() * MiB) : 0;
        jobs.push(get(gw.url + name, a ? `bytes=${a}-` : undefined).then((r) => {
          assert.ok(r.body.equals(data.subarray(a)), `${streams} streams: ${name} from ${a}`);
        }));
      }
      await Promise.all(jobs);
    }
    // After the abandoned streams, the pooled buffers serve the right bytes again.
    for (const [name, data] of files) assert.ok((await get(gw.url + name)).body.equals(data), name);
  });
});

/** A GET that stops reading after its first bytes until `resume` settles (its buffers stay in use meanwhile). */
function slowGet(url: string, resume: Promise<unknown>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      const chunks: Buffer[] = [];
      res.once('data', () => { res.pause(); void resume.finally(() => res.resume()); });
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    }).on('error', reject).end();
  });
}

describe('cold reads through reused fetch buffers', () => {
  test('side by side with slow and departing clients, every stream gets its own file\'s bytes', async (t) => {
    // 1 MiB blocks: many fetches share few pooled buffers; a reader that still holds a buffer
    // while its block is installed must never see it refilled with another block.
    const gw = await startGateway({ cache: { ttl: 60_000, blockSize: MiB, maxInflightFetches: 4 } });
    t.after(() => gw.close());
    const next = rng(11);
    for (let round = 0; round < 3; round++) {
      const files = new Map<string, Buffer>();
      for (let f = 0; f < 4; f++) {
        const data = randomBytes((f === 0 ? 24 : 5) * MiB + Math.floor(next() * MiB));
        files.set(`r${round}-${f}.bin`, data);
        await writeFile(join(gw.upstreamDir, `r${round}-${f}.bin`), data);
      }
      const names = [...files.keys()];
      // The slow client stalls with a block's bytes in flight (more than the socket buffers
      // take) while the other streams fetch through the same few buffers, then reads on.
      const others = Promise.all([
        get(gw.url + names[1]).then((r) => assert.ok(r.body.equals(files.get(names[1]!)!), `round ${round}: ${names[1]}`)),
        abandon(gw.url + names[2], Math.floor(next() * 4 * MiB)),
        get(gw.url + names[3], `bytes=${MiB + 7}-`).then((r) => assert.ok(r.body.equals(files.get(names[3]!)!.subarray(MiB + 7)), `round ${round}: ${names[3]} range`)),
      ]);
      const slow = slowGet(gw.url + names[0], others.then(() => new Promise((r) => setTimeout(r, 100))));
      await others;
      assert.ok((await slow).equals(files.get(names[0]!)!), `round ${round}: slow ${names[0]}`);
      // Whatever the departed client left half-fetched is served whole and exact afterwards.
      assert.ok((await get(gw.url + names[2])).body.equals(files.get(names[2]!)!), `round ${round}: ${names[2]} after abandon`);
    }
  });

  test('a yielded piece keeps its bytes until the consumer asks for the next, while other cold reads reuse buffers', async (t) => {
    const gw = await startGateway({ cache: { ttl: 60_000, blockSize: MiB, maxInflightFetches: 2 } });
    t.after(() => gw.close());
    const held = randomBytes(3 * MiB);
    await writeFile(join(gw.upstreamDir, 'held.bin'), held);
    const cache = gw.gateway.cache;
    // One piece of each of the first blocks, kept (not consumed) while they are installed and
    // 24 other blocks are fetched through the pool.
    const pieces: Array<{ at: number; buf: Buffer; it: AsyncGenerator<Buffer> }> = [];
    const node = await cache.getnode('/held.bin');
    for (const at of [0, MiB, 2 * MiB]) {
      const it = cache.readRange(node, at, at + MiB - 1);
      const first = await it.next();
      assert.ok(!first.done);
      pieces.push({ at, buf: first.value, it });
    }
    await cache.flush(); // every block of held.bin is installed; their fetch buffers let go
    for (let f = 0; f < 4; f++) {
      const data = randomBytes(6 * MiB);
      await writeFile(join(gw.upstreamDir, `other-${f}.bin`), data);
      assert.ok((await get(gw.url + `other-${f}.bin`)).body.equals(data));
    }
    for (const p of pieces) {
      assert.ok(p.buf.length > 0);
      assert.ok(p.buf.equals(held.subarray(p.at, p.at + p.buf.length)), `the piece at ${p.at} was overwritten`);
      await p.it.return(undefined);
    }
  });
});
