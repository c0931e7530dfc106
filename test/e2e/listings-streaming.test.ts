import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request } from 'node:http';
import { startGateway, type TestGateway } from '../helpers/inproc.js';
import { raw } from '../helpers/http.js';
import { FsUpstream } from '../../src/upstream/fs.js';
import type { ReadOptions } from '../../src/upstream/types.js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';

// Directory listings answered from memory within the TTL, kept coherent with changes made
// through the gateway; and cold blocks streamed to the client while they arrive. Counted at
// the real directory upstream.

const MiB = 1024 * 1024;

async function names(gw: TestGateway, dir: string): Promise<string[]> {
  const r = await raw(gw.url, 'PROPFIND', dir, { depth: '1' });
  assert.equal(r.status, 207, r.text);
  return [...r.text.matchAll(/<D:href>([^<]*)<\/D:href>/g)].map((m) => decodeURIComponent(m[1]!)).filter((h) => h !== dir).sort();
}

describe('directory listings within the TTL', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway({ cache: { ttl: 60_000 } });
    await mkdir(join(gw.upstreamDir, 'd'));
    for (let i = 0; i < 50; i++) await writeFile(join(gw.upstreamDir, 'd', `f${i}.txt`), `file ${i}\n`);
  });
  after(() => gw.close());

  test('a repeated PROPFIND makes 0 upstream lists, and lists the same entries', async () => {
    const first = await names(gw, '/d/');
    assert.equal(first.length, 50);
    gw.upstream.reset();
    assert.deepEqual(await names(gw, '/d/'), first);
    assert.deepEqual(await names(gw, '/d/'), first);
    assert.equal(gw.upstream.count('list'), 0);
  });

  test('PUT, MKCOL, DELETE, MOVE and COPY through the gateway show in the next listing at once', async () => {
    await names(gw, '/d/');
    assert.equal((await raw(gw.url, 'PUT', '/d/new.txt', {}, 'new\n')).status, 201);
    assert.ok((await names(gw, '/d/')).includes('/d/new.txt'));
    assert.equal((await raw(gw.url, 'MKCOL', '/d/sub')).status, 201);
    assert.ok((await names(gw, '/d/')).includes('/d/sub/'));
    assert.equal((await raw(gw.url, 'DELETE', '/d/f0.txt')).status, 204);
    assert.ok(!(await names(gw, '/d/')).includes('/d/f0.txt'));
    assert.deepEqual(await names(gw, '/d/sub/'), []);
    assert.equal((await raw(gw.url, 'MOVE', '/d/f1.txt', { destination: gw.url + 'd/sub/moved.txt' })).status, 201);
    assert.ok(!(await names(gw, '/d/')).includes('/d/f1.txt'));
    assert.deepEqual(await names(gw, '/d/sub/'), ['/d/sub/moved.txt']);
    assert.equal((await raw(gw.url, 'COPY', '/d/f2.txt', { destination: gw.url + 'd/sub/copied.txt' })).status, 201);
    assert.deepEqual(await names(gw, '/d/sub/'), ['/d/sub/copied.txt', '/d/sub/moved.txt']);
    // A directory moved away takes its cached listing with it.
    assert.equal((await raw(gw.url, 'MOVE', '/d/sub/', { destination: gw.url + 'd/sub2/' })).status, 201);
    assert.equal((await raw(gw.url, 'PROPFIND', '/d/sub/', { depth: '1' })).status, 404);
    assert.deepEqual(await names(gw, '/d/sub2/'), ['/d/sub2/copied.txt', '/d/sub2/moved.txt']);
  });

  test('an overwrite through the gateway shows the new size in the listing', async () => {
    await names(gw, '/d/');
    assert.equal((await raw(gw.url, 'PUT', '/d/f3.txt', {}, 'x'.repeat(1234))).status, 204);
    const r = await raw(gw.url, 'PROPFIND', '/d/', { depth: '1' });
    assert.match(r.text, /<D:href>\/d\/f3\.txt<\/D:href>.*?<D:getcontentlength>1234<\/D:getcontentlength>/s);
  });

  test('a PROPPATCH of Win32LastModifiedTime (Explorer) shows in the next listing', async () => {
    await names(gw, '/d/');
    const body = '<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
      + '<D:set><D:prop><Z:Win32LastModifiedTime>Wed, 01 Jan 2020 10:00:00 GMT</Z:Win32LastModifiedTime></D:prop></D:set></D:propertyupdate>';
    assert.equal((await raw(gw.url, 'PROPPATCH', '/d/f4.txt', { 'content-type': 'application/xml' }, body)).status, 207);
    const r = await raw(gw.url, 'PROPFIND', '/d/', { depth: '1' });
    assert.match(r.text, /<D:href>\/d\/f4\.txt<\/D:href>.*?<D:getlastmodified>Wed, 01 Jan 2020 10:00:00 GMT<\/D:getlastmodified>/s);
  });

  test('a change made behind the gateway shows after POST /invalidate (and not before, within the TTL)', async () => {
    await names(gw, '/d/');
    await writeFile(join(gw.upstreamDir, 'd', 'behind.txt'), 'behind\n');
    assert.ok(!(await names(gw, '/d/')).includes('/d/behind.txt'));
    const inv = await fetch(gw.adminUrl + 'invalidate?path=/d', { method: 'POST' });
    assert.equal(inv.status, 200);
    gw.upstream.reset();
    assert.ok((await names(gw, '/d/')).includes('/d/behind.txt'));
    assert.equal(gw.upstream.count('list'), 1);
  });
});

describe('directory listings: TTL and bounds', () => {
  test('after the TTL the upstream is listed again', async () => {
    const gw = await startGateway({ cache: { ttl: 200 } });
    try {
      await writeFile(join(gw.upstreamDir, 'a.txt'), 'a');
      assert.deepEqual(await names(gw, '/'), ['/a.txt']);
      await writeFile(join(gw.upstreamDir, 'b.txt'), 'b');
      await new Promise((r) => setTimeout(r, 300));
      gw.upstream.reset();
      assert.deepEqual(await names(gw, '/'), ['/a.txt', '/b.txt']);
      assert.equal(gw.upstream.count('list'), 1);
    } finally {
      await gw.close();
    }
  });

  test('listingEntries 0 lists upstream every time; a directory larger than the bound is not kept', async () => {
    for (const [listingEntries, files, expectLists] of [[0, 3, 2], [10, 20, 2], [10, 5, 0]] as const) {
      const gw = await startGateway({ cache: { ttl: 60_000, listingEntries } });
      try {
        for (let i = 0; i < files; i++) await writeFile(join(gw.upstreamDir, `f${i}`), 'x');
        await names(gw, '/');
        gw.upstream.reset();
        assert.equal((await names(gw, '/')).length, files);
        assert.equal((await names(gw, '/')).length, files);
        assert.equal(gw.upstream.count('list'), expectLists, `listingEntries ${listingEntries}, ${files} files`);
      } finally {
        await gw.close();
      }
    }
  });
});

/** An fs upstream whose reads deliver the first half of the bytes, then wait for `release`. */
class StallingFsUpstream extends FsUpstream {
  release: (() => void) | undefined;
  stalled: Promise<void> | undefined;
  failAfterHalf = false;

  override async read(path: string, { offset, length, expectValidator, sink }: ReadOptions): Promise<Buffer> {
    const data = await super.read(path, { offset, length, expectValidator });
    if (!sink || offset !== 0) return data;
    const half = Math.floor(data.length / 2);
    data.copy(sink.buffer, 0, 0, half);
    sink.progress(half);
    await new Promise<void>((resolve) => { this.release = () => { this.release = undefined; resolve(); }; });
    if (this.failAfterHalf) throw new Error('connection reset by upstream');
    data.copy(sink.buffer, half, half);
    sink.progress(data.length);
    return sink.buffer.subarray(0, data.length);
  }
}

describe('cold blocks stream while they arrive', () => {
  let gw: TestGateway;
  let up: StallingFsUpstream;
  let content: Buffer;

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'davgate-up-'));
    content = randomBytes(6 * MiB);
    await writeFile(join(dir, 'f.bin'), content);
    up = await StallingFsUpstream.open(dir) as StallingFsUpstream;
    Object.setPrototypeOf(up, StallingFsUpstream.prototype);
    gw = await startGateway({ cache: { ttl: 60_000, blockSize: 4 * MiB } }, { upstreamDir: dir, upstream: up });
  });
  after(async () => {
    up.release?.();
    await gw.close();
    await rm(gw.upstreamDir, { recursive: true, force: true });
  });

  test('the client gets the first bytes of a block before the upstream read of that block ends', async () => {
    const received: Buffer[] = [];
    let sawBeforeRelease = 0;
    const done = new Promise<void>((resolve, reject) => {
      request(gw.url + 'f.bin', (res) => {
        assert.equal(res.statusCode, 200);
        res.on('data', (c: Buffer) => {
          received.push(c);
          const total = received.reduce((n, b) => n + b.length, 0);
          // Everything up to half the first block may arrive while the read is stalled.
          if (up.release && total <= 2 * MiB) {
            sawBeforeRelease = total;
            if (total === 2 * MiB) up.release();
          }
        });
        res.on('end', resolve);
        res.on('error', reject);
      }).on('error', reject).end();
    });
    // Without streaming nothing would arrive before the release: release anyway after 5 s, so that
    // case fails on the assertion below instead of hanging.
    const fallback = setTimeout(() => up.release?.(), 5000);
    await done;
    clearTimeout(fallback);
    assert.equal(sawBeforeRelease, 2 * MiB, 'the first half of block 0 reached the client while its upstream read was stalled');
    const body = Buffer.concat(received);
    assert.equal(createHash('sha256').update(body).digest('hex'), createHash('sha256').update(content).digest('hex'));
  });
});

describe('a cold block whose upstream read fails midway', () => {
  test('cuts the connection (no complete 200 with missing bytes); the next GET is whole and correct', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'davgate-up-'));
    const content = randomBytes(5 * MiB);
    await writeFile(join(dir, 'f.bin'), content);
    const up = await StallingFsUpstream.open(dir) as StallingFsUpstream;
    Object.setPrototypeOf(up, StallingFsUpstream.prototype);
    up.failAfterHalf = true;
    const gw = await startGateway({ cache: { ttl: 60_000, blockSize: 4 * MiB }, upstreamPolicy: { retries: 0 } }, { upstreamDir: dir, upstream: up });
    try {
      const first = await new Promise<{ bytes: number; complete: boolean; aborted: boolean }>((resolve) => {
        let bytes = 0;
        request(gw.url + 'f.bin', (res) => {
          res.on('data', (c: Buffer) => { bytes += c.length; if (bytes >= 2 * MiB) up.release?.(); });
          res.on('end', () => resolve({ bytes, complete: res.complete, aborted: false }));
          res.on('error', () => resolve({ bytes, complete: false, aborted: true }));
          res.on('aborted', () => resolve({ bytes, complete: false, aborted: true }));
        }).on('error', () => resolve({ bytes, complete: false, aborted: true })).end();
      });
      assert.ok(first.bytes < content.length, `got ${first.bytes} bytes`);
      assert.equal(first.complete, false);
      up.failAfterHalf = false;
      const again = new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        request(gw.url + 'f.bin', (res) => {
          res.on('data', (c: Buffer) => { chunks.push(c); if (chunks.reduce((n, b) => n + b.length, 0) >= 2 * MiB) up.release?.(); });
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
        }).on('error', reject).end();
      });
      assert.ok((await again).equals(content));
    } finally {
      up.release?.();
      await gw.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
