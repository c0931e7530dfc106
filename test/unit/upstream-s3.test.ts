import { test } from 'node:test';
import assert from 'node:assert/strict';
import { S3Upstream } from '../../src/upstream/s3.js';
import { ResilientUpstream } from '../../src/upstream/resilient.js';

// What an S3 upstream implements depends on its configuration; no request is made here.

const OPTS = { endpoint: 'http://127.0.0.1:9', region: 'us-east-1', bucket: 'b', prefix: '/p/', forcePathStyle: true };
const POLICY = { timeout: 1000, retries: 0, failureThreshold: 3, downFor: 1000 };

test('quota exists only with quotaBytes, and answers that figure; never setMtime', async () => {
  const bare = new S3Upstream(OPTS);
  const withQuota = new S3Upstream({ ...OPTS, quotaBytes: 1234 });
  try {
    assert.equal(bare.quota, undefined);
    assert.ok(!('setMtime' in bare));
    assert.deepEqual(await withQuota.quota!(), { availableBytes: 1234, usedBytes: 0 });
    // The outage wrapper offers exactly what the backend has.
    assert.equal(new ResilientUpstream(bare, POLICY).quota, undefined);
    assert.deepEqual(await new ResilientUpstream(withQuota, POLICY).quota!('/'), { availableBytes: 1234, usedBytes: 0 });
    assert.equal(bare.id, 's3:http://127.0.0.1:9/b/p/', 'the prefix is trimmed of slashes once');
  } finally {
    await bare.close();
    await withQuota.close();
  }
});

test('deleteKeys: batch sends DeleteObjects of 1,000; single one DeleteObject per key, 16 at most in flight', async () => {
  const { deleteKeys } = await import('../../src/upstream/s3delete.js');
  const keys = async function* (n: number) { for (let i = 0; i < n; i++) yield `k${i}`; };
  const sent: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const fake = {
    send: async (cmd: { constructor: { name: string }; input: { Key?: string; Delete?: { Objects?: unknown[] } } }) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 1));
      inFlight--;
      if (cmd.input.Key === 'k77') throw new Error('refused');
      sent.push(`${cmd.constructor.name}:${cmd.input.Key ?? cmd.input.Delete?.Objects?.length}`);
      return {};
    },
  } as unknown as import('@aws-sdk/client-s3').S3Client;
  const call = <T>(fn: () => Promise<T>) => fn();
  await deleteKeys(fake, 'b', keys(2500), 'batch', call);
  assert.deepEqual(sent, ['DeleteObjectsCommand:1000', 'DeleteObjectsCommand:1000', 'DeleteObjectsCommand:500']);
  sent.length = 0;
  await deleteKeys(fake, 'b', keys(50), 'single', call);
  assert.equal(sent.length, 50);
  assert.ok(sent.every((s) => s.startsWith('DeleteObjectCommand:')));
  assert.ok(maxInFlight <= 16 && maxInFlight > 1, `in flight at most ${maxInFlight}`);
  await assert.rejects(deleteKeys(fake, 'b', keys(200), 'single', call), /refused/);
});

test('contentMd5: a single-part ETag is the MD5; multipart and unquoted garbage are not; off when told', async () => {
  const base = { region: 'us-east-1', bucket: 'b', prefix: '', forcePathStyle: true, endpoint: 'http://127.0.0.1:1' };
  const s3 = new S3Upstream(base);
  assert.equal(s3.contentMd5('"d41d8cd98f00b204e9800998ecf8427e":0'), 'd41d8cd98f00b204e9800998ecf8427e');
  assert.equal(s3.contentMd5('"d41d8cd98f00b204e9800998ecf8427e-3":300'), undefined);
  assert.equal(s3.contentMd5(':12'), undefined);
  assert.equal(new S3Upstream({ ...base, etagIsMd5: false }).contentMd5('"d41d8cd98f00b204e9800998ecf8427e":0'), undefined);
  await s3.close();
});
