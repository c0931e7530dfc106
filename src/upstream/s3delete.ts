import { DeleteObjectCommand, DeleteObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { UpstreamUnavailableError } from '../errors.js';

// Deleting many keys (a collection's DELETE, the source of a MOVE). `batch` is DeleteObjects of
// up to 1,000 keys; `single` is one DeleteObject per key, several in flight, for stores that
// mishandle the batch call (Ceph RGW 16.2 aborts on it in a bucket with notifications).

export type DeleteMode = 'batch' | 'single';

const BATCH = 1000;
const SINGLE_CONCURRENCY = 16;

/** `call` runs one SDK request and translates its failure. */
export async function deleteKeys(
  s3: S3Client, bucket: string, keys: AsyncIterable<string>, mode: DeleteMode,
  call: <T>(fn: () => Promise<T>) => Promise<T>,
): Promise<void> {
  if (mode === 'single') {
    const limit = pLimit(SINGLE_CONCURRENCY);
    const pending: Array<Promise<unknown>> = [];
    // Caught at once (a rejection waiting for Promise.all would be unhandled meanwhile); the first is thrown.
    let failed: { err: unknown } | undefined;
    for await (const Key of keys) {
      if (failed) break;
      pending.push(limit(() => call(() => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key })))).catch((err: unknown) => { failed ??= { err }; }));
      // A tree of a million keys must not queue a million requests.
      if (pending.length >= BATCH) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    if (failed) throw failed.err;
    return;
  }
  let batch: string[] = [];
  const flush = async () => {
    if (!batch.length) return;
    const objects = batch.map((Key) => ({ Key }));
    batch = [];
    const out = await call(() => s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } })));
    if (out.Errors?.length) throw new UpstreamUnavailableError(`object store refused to delete ${out.Errors.length} objects`);
  };
  for await (const key of keys) {
    batch.push(key);
    if (batch.length === BATCH) await flush();
  }
  await flush();
}
