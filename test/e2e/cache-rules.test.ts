// Cache policy per path (cache.rules), counted at the upstream: a bypassed glob is read
// through every time, a file over its rule's maxFileSize too, a path with TTL 0 sees an
// upstream change at once while the default TTL keeps others, and a long TTL keeps a listing.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/inproc.js';

describe('cache rules per path', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({
      cache: {
        ttl: 60_000,
        rules: [
          { path: '/live', ttl: 0 },
          { path: '**/*.iso', bypass: true },
          { path: '/media', maxFileSize: 1000 },
        ],
      },
    });
    await mkdir(join(gw.upstreamDir, 'live'));
    await mkdir(join(gw.upstreamDir, 'media'));
    await writeFile(join(gw.upstreamDir, 'disk.iso'), Buffer.alloc(300_000, 1));
    await writeFile(join(gw.upstreamDir, 'media', 'big.mp4'), Buffer.alloc(5000, 2));
    await writeFile(join(gw.upstreamDir, 'media', 'small.jpg'), Buffer.alloc(500, 3));
    await writeFile(join(gw.upstreamDir, 'live', 'now.txt'), 'one\n');
    await writeFile(join(gw.upstreamDir, 'kept.txt'), 'one\n');
  });
  after(async () => { await gw?.close(); });

  const read = async (path: string) => Buffer.from(await (await fetch(gw.url + path.slice(1))).arrayBuffer());
  async function readsOf(path: string, times: number): Promise<number> {
    gw.upstream.reset();
    for (let i = 0; i < times; i++) {
      await read(path);
      await gw.gateway.cache.flush();
    }
    return gw.upstream.count('read');
  }

  test('bypass and maxFileSize: read through every time, never kept; other files cached once', async () => {
    assert.equal(await readsOf('/disk.iso', 3), 3, 'a bypassed file');
    assert.equal(await readsOf('/media/big.mp4', 3), 3, 'over maxFileSize');
    assert.equal(await readsOf('/media/small.jpg', 3), 1, 'within maxFileSize');
    assert.ok((await read('/disk.iso')).equals(Buffer.alloc(300_000, 1)));
    const diskIso = await gw.gateway.cache.getnode('/disk.iso');
    assert.equal(gw.gateway.cache.cachedBytes(diskIso), 0);
  });

  test('TTL per path: a change upstream shows at once under TTL 0, not under the default', async () => {
    assert.equal((await read('/live/now.txt')).toString(), 'one\n');
    assert.equal((await read('/kept.txt')).toString(), 'one\n');
    const later = new Date(Date.now() + 5000);
    for (const p of ['live/now.txt', 'kept.txt']) {
      await writeFile(join(gw.upstreamDir, p), 'two!\n');
      await utimes(join(gw.upstreamDir, p), later, later);
    }
    assert.equal((await read('/live/now.txt')).toString(), 'two!\n');
    assert.equal((await read('/kept.txt')).toString(), 'one\n', 'the default TTL of 60 s still holds');
    gw.upstream.reset();
    await fetch(gw.url + 'live/', { method: 'PROPFIND', headers: { depth: '1' } }).then((r) => r.text());
    await fetch(gw.url + 'live/', { method: 'PROPFIND', headers: { depth: '1' } }).then((r) => r.text());
    assert.equal(gw.upstream.count('list'), 2, 'a listing under TTL 0 is never kept');
    gw.upstream.reset();
    await fetch(gw.url, { method: 'PROPFIND', headers: { depth: '1' } }).then((r) => r.text());
    await fetch(gw.url, { method: 'PROPFIND', headers: { depth: '1' } }).then((r) => r.text());
    assert.ok(gw.upstream.count('list') <= 1, 'the root listing is kept for the default TTL');
  });
});

describe('pinned files', () => {
  let gw: TestGateway;
  const KiB = 1024;
  before(async () => {
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const up = await mkdtemp(join(tmpdir(), 'davgate-pins-'));
    await mkdir(join(up, 'keep'));
    await mkdir(join(up, 'other'));
    await writeFile(join(up, 'keep', 'a.bin'), Buffer.alloc(512 * KiB, 1));
    await writeFile(join(up, 'keep', 'b.txt'), 'pinned too\n');
    for (let i = 0; i < 6; i++) await writeFile(join(up, 'other', `f${i}.bin`), Buffer.alloc(512 * KiB, 10 + i));
    gw = await startGateway({
      cache: { ttl: 200, blockSize: 64 * KiB, maxBytes: 2 * 1024 * KiB, highWatermark: 0.9, lowWatermark: 0.6, pinnedMaxBytes: 1024 * KiB, rules: [{ path: '/keep', pin: true }] },
    }, { upstreamDir: up });
  });
  after(async () => { await gw?.close(); });

  const cached = async (path: string) => gw.gateway.cache.cachedBytes(await gw.gateway.cache.getnode(path));
  async function eventually(what: string, cond: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 100; i++) { if (await cond()) return; await new Promise((r) => setTimeout(r, 50)); }
    assert.fail(what);
  }
  const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(gw.adminUrl + 'metrics')).text())?.[1]);

  test('a pin rule reads its files in at start; eviction never takes them', async () => {
    await eventually('pinned files warmed at start', async () => (await cached('/keep/a.bin')) === 512 * KiB && (await cached('/keep/b.txt')) === 11);
    for (let i = 0; i < 6; i++) await (await fetch(gw.url + `other/f${i}.bin`)).arrayBuffer(); // 3 MiB through a 2 MiB cache
    await gw.gateway.cache.flush();
    assert.ok(gw.gateway.cache.blockStore.bytes <= 2 * 1024 * KiB, 'the cache kept its limit');
    assert.equal(await cached('/keep/a.bin'), 512 * KiB, 'the pinned file is whole');
    assert.ok((await cached('/other/f0.bin')) < 512 * KiB, 'an unpinned file was evicted');
    assert.ok(await metric('davgate_cache_pinned_bytes') >= 512 * KiB);
    assert.equal(await metric('davgate_cache_pinned_limit_bytes'), 1024 * KiB);
    const pf = await (await fetch(gw.url + 'keep/a.bin', { method: 'PROPFIND', headers: { depth: '0' },
      body: '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:G="urn:davgate"><D:prop><G:cache/></D:prop></D:propfind>' })).text();
    assert.match(pf, /<pinned xmlns="urn:davgate">true<\/pinned>/);
  });

  test('a pinned file written through the gateway is read in again at once', async () => {
    const res = await fetch(gw.url + 'keep/a.bin', { method: 'PUT', body: Buffer.alloc(300 * KiB, 9) });
    assert.equal(res.status, 204);
    await eventually('the new version warmed', async () => (await cached('/keep/a.bin')) === 300 * KiB);
  });

  test('a pinned file changed behind the gateway is read in again once its new version is seen', async () => {
    await eventually('warm', async () => (await cached('/keep/b.txt')) === 11);
    const later = new Date(Date.now() + 5000);
    await writeFile(join(gw.upstreamDir, 'keep', 'b.txt'), 'pinned, and changed upstream\n');
    await utimes(join(gw.upstreamDir, 'keep', 'b.txt'), later, later);
    await new Promise((r) => setTimeout(r, 300)); // past the TTL: the next look revalidates
    await gw.gateway.cache.getnode('/keep/b.txt');
    await eventually('the new version warmed without a read', async () => (await cached('/keep/b.txt')) === 29);
  });

  test('pin and unpin at run time through the admin API; the limit is kept', async () => {
    const pin = await fetch(gw.adminUrl + 'cache/pin?path=' + encodeURIComponent('/other/f5.bin'), { method: 'POST' });
    assert.equal(pin.status, 200);
    const status = await pin.json() as { paths: string[]; pinnedBytes: number; overLimit: number };
    assert.deepEqual(status.paths, ['/other/f5.bin']);
    assert.equal(await cached('/other/f5.bin'), 512 * KiB);
    assert.ok(gw.gateway.cache.isPinned(await gw.gateway.cache.getnode('/other/f5.bin')));
    const over = await (await fetch(gw.adminUrl + 'cache/pin?path=' + encodeURIComponent('/other/f4.bin'), { method: 'POST' })).json() as { overLimit: number; pinnedBytes: number };
    assert.equal(over.overLimit, 1, 'a file past the pinned limit is cached, not pinned');
    assert.ok(over.pinnedBytes <= 1024 * KiB);
    assert.equal((await fetch(gw.adminUrl + 'cache/pin?path=/nothing', { method: 'POST' })).status, 404);
    const unpin = await (await fetch(gw.adminUrl + 'cache/unpin?path=' + encodeURIComponent('/other/f5.bin'), { method: 'POST' })).json() as { paths: string[] };
    assert.deepEqual(unpin.paths, ['/other/f4.bin']);
    assert.ok(!gw.gateway.cache.isPinned(await gw.gateway.cache.getnode('/other/f5.bin')));
    const { readFile } = await import('node:fs/promises');
    assert.deepEqual(JSON.parse(await readFile(join(gw.cacheDir, 'pins.json'), 'utf8')), { paths: ['/other/f4.bin'] }, 'kept across restarts');
  });
});
