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
