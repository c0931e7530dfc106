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
