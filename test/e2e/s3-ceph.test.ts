import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { S3Client, CreateBucketCommand, PutObjectCommand, ListObjectsV2Command, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeDir, removeDir, sleep, startGatewayProcess } from '../helpers/gateway-process.js';
import pLimit from 'p-limit';
import { startCeph, type CephCluster } from '../helpers/ceph.js';
import { startGateway, type TestGateway } from '../helpers/inproc.js';
import { S3Upstream } from '../../src/upstream/s3.js';
import { ResilientUpstream } from '../../src/upstream/resilient.js';

// davgate in front of a real distributed store: a single-node Ceph, its RADOS Gateway (S3).

const MiB = 1024 * 1024;
const BLOCK = 4 * MiB;
const BUCKET = 'davgate';

function http(url: string, method: string, headers: Record<string, string> = {}, body?: Readable | Buffer | string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; hash: string; bytes: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const h = createHash('sha256');
      let bytes = 0;
      const keep: Buffer[] = [];
      res.on('data', (c: Buffer) => { h.update(c); bytes += c.length; if (bytes <= 16 << 20) keep.push(c); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, hash: h.digest('hex'), bytes, text: Buffer.concat(keep).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body instanceof Readable) body.pipe(req);
    else req.end(body);
  });
}

function patterned(size: number, seed: Buffer): { stream: () => Readable; hash: string } {
  const chunk = (i: number) => { const c = Buffer.from(seed.subarray(0, Math.min(MiB, size - i * MiB))); c.writeUInt32LE(i, 0); return c; };
  const h = createHash('sha256');
  for (let i = 0; i * MiB < size; i++) h.update(chunk(i));
  return {
    hash: h.digest('hex'),
    stream: () => Readable.from((function* () { for (let i = 0; i * MiB < size; i++) yield chunk(i); })()),
  };
}

describe('S3 upstream: Ceph RADOS Gateway', { timeout: 600_000 }, () => {
  let ceph: CephCluster;
  let s3: S3Client;
  let gw: TestGateway;

  before(async () => {
    ceph = await startCeph();
    s3 = new S3Client({ endpoint: ceph.s3.endpoint, region: ceph.s3.region, forcePathStyle: true, credentials: { accessKeyId: ceph.s3.accessKeyId, secretAccessKey: ceph.s3.secretAccessKey } });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const upstreamConfig = { type: 's3', endpoint: ceph.s3.endpoint, region: ceph.s3.region, bucket: BUCKET, prefix: '', forcePathStyle: true, accessKeyId: ceph.s3.accessKeyId, secretAccessKey: ceph.s3.secretAccessKey };
    const inner = new ResilientUpstream(new S3Upstream({ ...upstreamConfig, region: ceph.s3.region }), { timeout: 10_000, retries: 2, failureThreshold: 3, downFor: 500 });
    gw = await startGateway({ upstream: upstreamConfig, cache: { ttl: 1000, blockSize: BLOCK } }, { upstream: inner });
  });
  after(async () => {
    await gw?.close();
    s3?.destroy();
    await ceph?.stop();
  });

  test('300 MiB through the gateway into RGW and back, byte-identical', async () => {
    const big = patterned(300 * MiB, randomBytes(MiB));
    const put = await http(gw.url + 'big.bin', 'PUT', { 'content-length': String(300 * MiB) }, big.stream());
    assert.equal(put.status, 201);
    const head = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'big.bin', Range: 'bytes=0-0' }));
    assert.equal(head.ContentRange, `bytes 0-0/${300 * MiB}`);
    const get = await http(gw.url + 'big.bin', 'GET');
    assert.equal(get.status, 200);
    assert.equal(get.bytes, 300 * MiB);
    assert.equal(get.hash, big.hash);
  });

  test('oc:checksums: the MD5 of a single-part object from its ETag; none for a multipart one', async () => {
    const body = Buffer.from('an object put in one part\n');
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'one-part.txt', Body: body }));
    const ask = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:oc="http://owncloud.org/ns"><D:prop><oc:checksums/></D:prop></D:propfind>';
    const one = await http(gw.url + 'one-part.txt', 'PROPFIND', { depth: '0', 'content-type': 'application/xml' }, ask);
    assert.equal(one.status, 207);
    assert.match(one.text, new RegExp(`<checksum xmlns="http://owncloud.org/ns">MD5:${createHash('md5').update(body).digest('hex')}</checksum>`));
    const multi = await http(gw.url + 'big.bin', 'PROPFIND', { depth: '0', 'content-type': 'application/xml' }, ask); // 300 MiB: multipart
    assert.doesNotMatch(multi.text, /MD5:/);
  });

  test('a 1-byte Range deep in the file fetches exactly one block', async () => {
    await gw.gateway.cache.invalidate('/');
    const metric = async () => Number(/davgate_upstream_requests_total\{operation="read",result="ok"\} (\d+)/.exec(await (await fetch(gw.adminUrl + 'metrics')).text())?.[1] ?? 0);
    // A fresh gateway view of a file not read before through this cache: write it via S3 directly.
    const data = randomBytes(40 * MiB);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'deep.bin', Body: data }));
    gw.upstream.reset();
    const before = await metric();
    const off = 37 * MiB + 12345;
    const res = await http(gw.url + 'deep.bin', 'GET', { range: `bytes=${off}-${off}` });
    assert.equal(res.status, 206);
    assert.equal(res.bytes, 1);
    assert.equal(createHash('sha256').update(data.subarray(off, off + 1)).digest('hex'), res.hash);
    await gw.gateway.cache.flush(); // the byte was streamed before the block's read ended
    assert.equal(gw.upstream.count('read'), 1);
    assert.deepEqual(gw.upstream.reads, [[9 * BLOCK, BLOCK]]);
    assert.equal(await metric() - before, 1, 'one ranged GetObject counted at the upstream metric');
  });

  test('a listing of 2,500 keys is complete and ordered', async () => {
    const limit = pLimit(32);
    const names = Array.from({ length: 2500 }, (_, i) => `k${String(i).padStart(5, '0')}.txt`);
    await Promise.all(names.map((n) => limit(() => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `many/${n}`, Body: n })))));
    const res = await http(gw.url + 'many/', 'PROPFIND', { depth: '1' });
    assert.equal(res.status, 207);
    const hrefs = [...res.text.matchAll(/<D:href>([^<]+)<\/D:href>/g)].map((m) => decodeURIComponent(m[1]!)).filter((h) => h !== '/many/');
    assert.equal(hrefs.length, 2500);
    assert.deepEqual(hrefs, names.map((n) => `/many/${n}`));
  });

  test('MOVE of a directory with 1,200 files', async () => {
    const limit = pLimit(32);
    await Promise.all(Array.from({ length: 1200 }, (_, i) => limit(() => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `movesrc/f${i}`, Body: String(i) })))));
    const t0 = Date.now();
    const res = await http(gw.url + 'movesrc', 'MOVE', { destination: gw.url + 'movedst' });
    console.log(`MOVE of 1,200 objects through the gateway: ${Date.now() - t0} ms`);
    assert.equal(res.status, 201);
    const count = async (prefix: string) => {
      let n = 0; let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
        n += page.KeyCount ?? 0;
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return n;
    };
    assert.equal(await count('movesrc/'), 0);
    assert.ok(await count('movedst/') >= 1200);
    const one = await http(gw.url + 'movedst/f777', 'GET');
    assert.equal(one.text, '777');
  });

  test('a change made directly in S3 is seen after the TTL, and at once after /invalidate', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'doc.txt', Body: 'one' }));
    assert.equal((await http(gw.url + 'doc.txt', 'GET')).text, 'one');
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'doc.txt', Body: 'two!' }));
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await http(gw.url + 'doc.txt', 'GET')).text, 'two!');
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'doc.txt', Body: 'three' }));
    const inv = await fetch(gw.adminUrl + 'invalidate?path=/doc.txt', { method: 'POST' });
    assert.equal(inv.status, 200);
    assert.equal((await http(gw.url + 'doc.txt', 'GET')).text, 'three');
  });

  test('SIGKILL mid-PUT: the multipart upload left open is aborted at the next start; the old version intact', async () => {
    const key = 'crash/doc.bin';
    const v1 = Buffer.alloc(MiB, 0x31);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: v1 }));
    const dir = await freeDir('davgate-s3-crash');
    const cfg = join(dir, 'c.yaml');
    await writeFile(cfg, ['upstream:', '  type: s3', `  bucket: ${BUCKET}`, `  endpoint: ${ceph.s3.endpoint}`, `  region: ${ceph.s3.region}`,
      `  accessKeyId: ${ceph.s3.accessKeyId}`, `  secretAccessKey: ${ceph.s3.secretAccessKey}`, '  abortUploadsAfter: 1s'].join('\n') + '\n');
    const open = async () => (await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'crash/' }))).Uploads ?? [];
    const args = ['-c', cfg, '--upstream', `s3://${BUCKET}/`, '--log-level', 'warn'];
    let proc = await startGatewayProcess({ args });
    try {
      // 20 of a promised 40 MiB: the 8 MiB parts of a multipart upload are on their way.
      const u = new URL(proc.url);
      const req = request({ host: u.hostname, port: Number(u.port), method: 'PUT', path: '/' + key, headers: { 'content-length': 40 * MiB }, agent: false });
      req.on('error', () => undefined);
      req.write(Buffer.alloc(20 * MiB, 0x32));
      for (let i = 0; (await open()).length === 0; i++) {
        assert.ok(i < 100, 'no multipart upload was started');
        await sleep(100);
      }
      process.kill(proc.pid, 'SIGKILL');
      await proc.stop();
      assert.equal((await open()).length, 1, 'the crash left no open upload to clean');
      assert.equal((await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).ContentLength, MiB);
      await sleep(1200);
      proc = await startGatewayProcess({ args });
      for (let i = 0; (await open()).length > 0; i++) {
        assert.ok(i < 100, 'the open upload was not aborted after a restart');
        await sleep(100);
      }
      const got = await http(proc.url + key, 'GET');
      assert.equal(got.status, 200);
      assert.equal(got.hash, createHash('sha256').update(v1).digest('hex'));
    } finally {
      await proc.stop();
      await removeDir(dir);
    }
  });

  test('outage: RGW stopped, cached files served stale, uncached fail fast; back without a restart', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cached.txt', Body: 'cached content' }));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'uncached.txt', Body: 'never read' }));
    assert.equal((await http(gw.url + 'cached.txt', 'GET')).text, 'cached content');
    await ceph.stopRgw();
    await new Promise((r) => setTimeout(r, 1100)); // past the TTL: the gateway must revalidate
    const t0 = Date.now();
    const stale = await http(gw.url + 'cached.txt', 'GET');
    assert.equal(stale.status, 200);
    assert.equal(stale.text, 'cached content');
    assert.equal(stale.headers['x-davgate-stale'], '1');
    const t1 = Date.now();
    const missing = await http(gw.url + 'uncached.txt', 'GET');
    const t2 = Date.now();
    console.log(`outage: stale hit ${t1 - t0} ms, uncached ${missing.status} in ${t2 - t1} ms`);
    assert.ok(missing.status === 502 || missing.status === 504, `uncached during outage: ${missing.status}`);
    assert.ok(t2 - t1 < 2000, `uncached answered in ${t2 - t1} ms`);
    // A listing cannot come from the cache: a clear 502/504, not a cut connection.
    const listing = await http(gw.url, 'PROPFIND', { depth: '1' });
    assert.ok(listing.status === 502 || listing.status === 504, `PROPFIND during outage: ${listing.status}`);
    const ready = await fetch(gw.adminUrl + 'readyz');
    assert.equal(ready.status, 503);
    assert.match(await (await fetch(gw.adminUrl + 'metrics')).text(), /davgate_stale_served_total [1-9]/);
    await ceph.startRgw();
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cached.txt', Body: 'fresh content' }));
    const deadline = Date.now() + 15_000;
    let fresh = '';
    while (Date.now() < deadline) {
      const r = await http(gw.url + 'cached.txt', 'GET');
      fresh = r.text;
      if (r.status === 200 && fresh === 'fresh content' && r.headers['x-davgate-stale'] === undefined) break;
      await new Promise((r2) => setTimeout(r2, 300));
    }
    console.log(`outage: fresh data again ${Date.now() - (deadline - 15_000)} ms after RGW was restarted`);
    assert.equal(fresh, 'fresh content');
    assert.equal((await fetch(gw.adminUrl + 'readyz')).status, 200);
  });
});
