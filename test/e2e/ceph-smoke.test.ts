// Smoke test of the single-node Ceph helper (test/helpers/ceph.ts): S3 through the RADOS Gateway
// with the AWS SDK (path-style), CephFS through the ceph-fuse mount, then stop() must leave no
// daemon of this cluster behind. It checks the helper and its recipe, so that
// tests of davgate's S3 and CephFS upstreams can rely on them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { startCeph, type CephCluster } from '../helpers/ceph.js';

const HAVE_FUSE = existsSync('/dev/fuse');

function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** State and command name of a pid from /proc, or undefined when no such process exists. */
function procInfo(pid: number): { state: string; comm: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
    const state = text.slice(text.lastIndexOf(')') + 2).split(' ')[0] ?? '';
    return { state, comm };
  } catch {
    return undefined;
  }
}

/** Live (non-zombie) processes whose environment holds CEPH_CONF=`conf`: everything the helper starts. */
function processesWithConf(conf: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (!readFileSync(`/proc/${e}/environ`, 'latin1').split('\0').includes(`CEPH_CONF=${conf}`)) continue;
    } catch {
      continue;
    }
    const info = procInfo(Number(e));
    if (info !== undefined && info.state !== 'Z') out.push(Number(e));
  }
  return out;
}

function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] !== undefined ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

describe('single-node Ceph: S3 (radosgw) and CephFS (ceph-fuse)', { timeout: 60_000 }, () => {
  let ceph: CephCluster | undefined;
  let s3: S3Client | undefined;

  const cluster = (): CephCluster => {
    assert.ok(ceph, 'ceph did not start');
    return ceph;
  };
  const client = (): S3Client => {
    assert.ok(s3, 'no S3 client');
    return s3;
  };

  before(async () => {
    const t0 = performance.now();
    ceph = await startCeph({ cephfs: HAVE_FUSE });
    console.error(`ceph-smoke: startCeph took ${Math.round(performance.now() - t0)} ms`);
    s3 = new S3Client({
      endpoint: ceph.s3.endpoint,
      region: ceph.s3.region,
      credentials: { accessKeyId: ceph.s3.accessKeyId, secretAccessKey: ceph.s3.secretAccessKey },
      forcePathStyle: true,
    });
  });

  after(async () => {
    s3?.destroy();
    await ceph?.stop();
  });

  test('S3: create a bucket, put, get, list, ranged get, multipart upload', async () => {
    const c = client();
    const bucket = 'davgate-smoke';
    await c.send(new CreateBucketCommand({ Bucket: bucket }));

    const body = Buffer.from('hello, ceph! 0123456789 abcdefghijklmnopqrstuvwxyz\n');
    const put = await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'dir/hello.txt', Body: body, ContentType: 'text/plain' }));
    assert.match(put.ETag ?? '', /^"[0-9a-f]{32}"$/);

    const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'dir/hello.txt' }));
    assert.equal(got.ContentLength, body.length);
    assert.equal(got.ContentType, 'text/plain');
    assert.equal(got.ETag, put.ETag);
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body);

    const ranged = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'dir/hello.txt', Range: 'bytes=7-10' }));
    assert.equal(ranged.ContentRange, `bytes 7-10/${body.length}`);
    assert.equal(ranged.ContentLength, 4);
    assert.equal(Buffer.from(await ranged.Body!.transformToByteArray()).toString(), 'ceph');

    // multipart through lib-storage (3 parts of 5 MiB + 1 MiB), as the S3 upstream will upload
    const big = randomBytes(11 * 1024 * 1024);
    const up = new Upload({ client: c, params: { Bucket: bucket, Key: 'big.bin', Body: big }, partSize: 5 * 1024 * 1024, queueSize: 2 });
    await up.done();
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: 'big.bin' }));
    assert.equal(head.ContentLength, big.length);
    assert.match(head.ETag ?? '', /-3"$/, 'a multipart ETag ends with -<parts>');
    const tail = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'big.bin', Range: `bytes=${big.length - 1000}-` }));
    assert.deepEqual(Buffer.from(await tail.Body!.transformToByteArray()), big.subarray(big.length - 1000));
    const whole = await c.send(new GetObjectCommand({ Bucket: bucket, Key: 'big.bin' }));
    assert.equal(sha256(await whole.Body!.transformToByteArray()), sha256(big));

    const list = await c.send(new ListObjectsV2Command({ Bucket: bucket }));
    assert.deepEqual(
      (list.Contents ?? []).map((o) => [o.Key, o.Size]),
      [
        ['big.bin', big.length],
        ['dir/hello.txt', body.length],
      ],
    );
    const delimited = await c.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/' }));
    assert.deepEqual((delimited.CommonPrefixes ?? []).map((p) => p.Prefix), ['dir/']);
    assert.deepEqual((delimited.Contents ?? []).map((o) => o.Key), ['big.bin']);
  });

  test('CephFS: write a file in the mount, read it back, list', { skip: HAVE_FUSE ? false : '/dev/fuse does not exist (no FUSE here)' }, async () => {
    const mnt = cluster().cephfsMount;
    assert.ok(mnt !== undefined, 'no CephFS mount');
    await mkdir(join(mnt, 'a', 'b'), { recursive: true });
    const data = randomBytes(3 * 1024 * 1024 + 17);
    await writeFile(join(mnt, 'a', 'b', 'data.bin'), data);
    await writeFile(join(mnt, 'a', 'note.txt'), 'hello cephfs\n');
    assert.equal(sha256(await readFile(join(mnt, 'a', 'b', 'data.bin'))), sha256(data));
    assert.equal(await readFile(join(mnt, 'a', 'note.txt'), 'utf8'), 'hello cephfs\n');
    assert.equal((await stat(join(mnt, 'a', 'b', 'data.bin'))).size, data.length);
    assert.deepEqual((await readdir(join(mnt, 'a'))).sort(), ['b', 'note.txt']);
    assert.deepEqual(await readdir(join(mnt, 'a', 'b')), ['data.bin']);
  });

  test('stop() leaves no daemon of this cluster and removes its directory', async (t) => {
    const c = cluster();
    const pids = c.pids();
    assert.equal(pids.length, HAVE_FUSE ? 5 : 3, `pids: ${pids.join(', ')}`);
    assert.deepEqual(processesWithConf(c.conf).sort(), [...pids].sort(), 'the daemons are exactly the processes with its CEPH_CONF');
    for (const pid of pids) {
      const info = procInfo(pid);
      assert.ok(info !== undefined && info.state !== 'Z', `pid ${pid} runs before stop`);
      t.diagnostic(`${info.comm} pid ${pid}: RSS ${Math.round(rssKiB(pid) / 1024)} MiB`);
    }
    t.diagnostic(`total RSS ${Math.round(pids.reduce((s, p) => s + rssKiB(p), 0) / 1024)} MiB`);

    const t0 = performance.now();
    await c.stop();
    t.diagnostic(`stop took ${Math.round(performance.now() - t0)} ms`);

    for (const pid of pids) {
      const info = procInfo(pid);
      // a zombie has exited (init reaps it a little later); a live pid running something other than
      // a ceph daemon would be a recycled pid, which cannot be one of ours
      const ours = info !== undefined && info.state !== 'Z' && /^(ceph-|radosgw)/.test(info.comm);
      assert.ok(!ours, `pid ${pid} (${info?.comm}) still runs after stop()`);
    }
    assert.deepEqual(processesWithConf(c.conf), [], 'no process runs with this cluster\'s CEPH_CONF');
    assert.equal(existsSync(c.dir), false, `${c.dir} still exists`);
    if (c.cephfsMount !== undefined) {
      const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
      assert.ok(!mountinfo.includes(` ${c.cephfsMount} `), `${c.cephfsMount} is still mounted`);
    }
    assert.match(await c.log(), /mon\.a\.log/, 'log() keeps the log tails after stop');
  });
});
