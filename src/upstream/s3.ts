import type { Readable } from 'node:stream';
import {
  S3Client, HeadObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand,
  DeleteObjectCommand, CopyObjectCommand, CreateMultipartUploadCommand, UploadPartCopyCommand,
  CompleteMultipartUploadCommand, AbortMultipartUploadCommand, ListMultipartUploadsCommand,
  type ListMultipartUploadsCommandOutput, type ListObjectsV2CommandOutput, type _Object,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pLimit from 'p-limit';
import {
  ConflictError, DavgateError, ExistsError, ForbiddenPathError, IsADirectoryError,
  NotADirectoryError, NotFoundError, PreconditionFailedError, UpstreamUnavailableError,
  ForbiddenError, UpstreamTimeoutError,
} from '../errors.js';
import { canonicalSegments, encodeHref, nameOf, parentOf } from '../davpath.js';
import type { CopyOptions, Entry, MoveOptions, Quota, ReadOptions, Upstream, WriteOptions } from './types.js';
import { checkRange, checkSize, checkTransfer, SizeCheck } from './checks.js';
import { collectBody } from './collect.js';
import { S3DirectReads } from './s3direct.js';
import { deleteKeys, type DeleteMode } from './s3delete.js';

// An S3-compatible object store (AWS S3, Ceph RGW, MinIO) as the upstream.
// Directories are key prefixes with "/" as delimiter; MKCOL writes an empty marker object
// "dir/" so that empty directories exist. The ETag is the validator, and ranged reads are
// conditional on it (If-Match), so a block is never cut from another version of an object.

export interface S3UpstreamOptions {
  endpoint?: string;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Reported as quota-available-bytes: object stores have no free space to ask for. */
  quotaBytes?: number;
  /** Multipart part size for large PUTs: memory per upload is bounded by partSize × queueSize. */
  partSize?: number;
  /** How a collection's keys are deleted (s3delete.ts); default batch. */
  deleteMode?: DeleteMode;
  /** A single-part object's ETag is the MD5 of its content (not so with SSE-C or SSE-KMS); default true. */
  etagIsMd5?: boolean;
}

/** How often multipart uploads that a crash left open are looked for (besides at start-up). */
const STALE_UPLOAD_SWEEP_MS = 3_600_000;

const MULTIPART_COPY_LIMIT = 5 * 1024 ** 3;
const COPY_PART = 512 * 1024 ** 2;
const COPY_CONCURRENCY = 16;

function statusOfSdk(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** SDK errors become davgate errors here and nowhere else (docs/architecture.md, Contracts). */
function translate(err: unknown, path: string): DavgateError {
  if (err instanceof DavgateError) return err;
  const status = statusOfSdk(err);
  const name = (err as Error)?.name;
  if (status === 404 || name === 'NoSuchKey' || name === 'NotFound') return new NotFoundError(path);
  if (status === 412 || name === 'PreconditionFailed') return new PreconditionFailedError('object changed upstream');
  if (status === 403) return new ForbiddenError('access denied by the object store');
  if (name === 'TimeoutError' || name === 'RequestTimeout' || (err as { code?: string })?.code === 'ETIMEDOUT') return new UpstreamTimeoutError('object store timed out', { cause: err });
  return new UpstreamUnavailableError(`object store error${status ? ` ${status}` : ''}: ${name ?? 'unknown'}`, { cause: err });
}

export class S3Upstream implements Upstream {
  readonly id: string;
  /**
   * Ceph RGW, cold, 256 MiB read 4 ranges at a time by a plain client: 4 MiB ranges took
   * 0.62-0.86 s, 16 MiB ranges 0.43-0.60 s (it stripes objects into 4 MiB pieces and reads a
   * range's pieces ahead in parallel; each request also pays its own lookups).
   */
  readonly preferredReadBytes = 16 * 1024 * 1024;
  /** Only with `quotaBytes` configured: an object store has no free space to ask for. */
  readonly quota?: () => Promise<Quota>;
  readonly #s3: S3Client;
  readonly #opts: S3UpstreamOptions;
  readonly #etagIsMd5: boolean;
  readonly #prefix: string;
  /** Block reads straight into the block buffer, for plain-HTTP endpoints. */
  readonly #direct: S3DirectReads | undefined;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(opts: S3UpstreamOptions, client?: S3Client) {
    this.#opts = opts;
    this.#etagIsMd5 = opts.etagIsMd5 ?? true;
    const prefix = opts.prefix.replace(/^\/+|\/+$/g, '');
    this.#prefix = prefix ? prefix + '/' : '';
    this.#s3 = client ?? new S3Client({
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle,
      credentials: opts.accessKeyId && opts.secretAccessKey ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } : undefined,
      maxAttempts: 1, // retries are the cache manager's business (bounded, jittered, reads only)
    });
    this.#direct = S3DirectReads.for(this.#s3, opts.endpoint, opts.forcePathStyle, opts.region, opts.bucket);
    this.id = `s3:${opts.endpoint ?? 'aws'}/${opts.bucket}/${this.#prefix}`;
    const quotaBytes = opts.quotaBytes;
    if (quotaBytes !== undefined) this.quota = async () => ({ availableBytes: quotaBytes, usedBytes: 0 });
  }

  /** Confinement: keys are built only from canonical paths, so nothing reaches outside the prefix. */
  #key(path: string): string {
    canonicalSegments(path);
    return this.#prefix + path.slice(1);
  }

  #dirKey(path: string): string {
    return path === '/' ? this.#prefix : this.#key(path) + '/';
  }

  #pathOf(key: string): string {
    return '/' + key.slice(this.#prefix.length).replace(/\/$/, '');
  }

  async #call<T>(path: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translate(err, path);
    }
  }

  /**
   * The ETag of an object uploaded in one part is the MD5 of its content (a multipart one ends
   * in "-<parts>"). Objects encrypted with SSE-C or SSE-KMS have other ETags (upstream.etagIsMd5: false).
   */
  contentMd5(validator: string): string | undefined {
    if (!this.#etagIsMd5) return undefined;
    return /^"?([0-9a-f]{32})"?:\d+$/.exec(validator)?.[1];
  }

  #fileEntry(path: string, etag: string | undefined, size: number, modified: Date | undefined): Entry {
    const mtimeMs = modified?.getTime() ?? 0;
    return { name: nameOf(path), path, kind: 'file', size, mtimeMs, birthtimeMs: mtimeMs, validator: `${etag ?? ''}:${size}` };
  }

  #dirEntry(path: string, modified?: Date): Entry {
    const mtimeMs = modified?.getTime() ?? 0;
    // A prefix has no version of its own: the same validator whether it came from list or stat.
    return { name: nameOf(path), path, kind: 'dir', size: 0, mtimeMs, birthtimeMs: mtimeMs, validator: 'dir' };
  }

  async #fileOrUndefined(path: string): Promise<Entry | undefined> {
    try {
      const h = await this.#s3.send(new HeadObjectCommand({ Bucket: this.#opts.bucket, Key: this.#key(path) }));
      return this.#fileEntry(path, h.ETag, h.ContentLength ?? 0, h.LastModified);
    } catch (err) {
      const e = translate(err, path);
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  }

  /** A directory exists when its marker or any key below it does. */
  async #dirOrUndefined(path: string): Promise<Entry | undefined> {
    if (path === '/') return this.#dirEntry('/');
    const out = await this.#call(path, () => this.#s3.send(new ListObjectsV2Command({ Bucket: this.#opts.bucket, Prefix: this.#dirKey(path), MaxKeys: 1 })));
    const first = out.Contents?.[0];
    if (!first) return undefined;
    return this.#dirEntry(path, first.Key === this.#dirKey(path) ? first.LastModified : undefined);
  }

  async stat(path: string): Promise<Entry> {
    if (path === '/') return this.#dirEntry('/');
    const file = await this.#fileOrUndefined(path);
    if (file) return file;
    const dir = await this.#dirOrUndefined(path);
    if (dir) return dir;
    throw new NotFoundError(path);
  }

  async *list(path: string): AsyncIterable<Entry> {
    const prefix = this.#dirKey(path);
    let token: string | undefined;
    let any = false;
    do {
      const page: ListObjectsV2CommandOutput = await this.#call(path, () => this.#s3.send(new ListObjectsV2Command({
        Bucket: this.#opts.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token,
      })));
      const entries: Entry[] = [];
      for (const o of page.Contents ?? []) {
        any = true;
        if (o.Key === prefix || !o.Key) continue; // the directory's own marker
        entries.push(this.#fileEntry(this.#pathOf(o.Key), o.ETag, o.Size ?? 0, o.LastModified));
      }
      for (const p of page.CommonPrefixes ?? []) {
        any = true;
        if (p.Prefix) entries.push(this.#dirEntry(this.#pathOf(p.Prefix)));
      }
      // Keys and rolled-up prefixes come back as two lists; merged, a page is in key order again.
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      yield* entries;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    if (!any && path !== '/') {
      // Nothing listed: an absent path, or a file (never an empty, marked directory: the marker lists).
      if (await this.#fileOrUndefined(path)) throw new NotADirectoryError();
      throw new NotFoundError(path);
    }
  }

  async read(path: string, { offset, length, expectValidator, sink }: ReadOptions): Promise<Buffer> {
    checkRange(offset, length);
    const etag = expectValidator?.slice(0, expectValidator.lastIndexOf(':')) || undefined;
    if (length <= 0) {
      await this.stat(path);
      return Buffer.alloc(0);
    }
    try {
      const key = this.#key(path);
      const direct = await this.#direct?.read(key, offset, length, etag, sink);
      if (direct) return direct;
      const out = await this.#s3.send(new GetObjectCommand({
        Bucket: this.#opts.bucket, Key: key, Range: `bytes=${offset}-${offset + length - 1}`, IfMatch: etag,
      }));
      const body = out.Body as Readable | undefined;
      // Not every store honours If-Match: check the version we got ourselves.
      if (etag && out.ETag && out.ETag !== etag) {
        body?.destroy();
        throw new PreconditionFailedError('object changed upstream');
      }
      if (!body) return Buffer.alloc(0);
      // A store that ignores Range sends the whole object (status 200): skip to our part.
      return await collectBody(body, out.ContentRange ? 0 : offset, length, sink, out.ContentLength);
    } catch (err) {
      if (statusOfSdk(err) === 416) return Buffer.alloc(0); // at or past the end
      throw translate(err, path);
    }
  }

  async #requireParent(path: string): Promise<void> {
    const parent = parentOf(path);
    if (parent === '/') return;
    const p = await this.#fileOrUndefined(parent) ?? await this.#dirOrUndefined(parent);
    if (!p || p.kind !== 'dir') throw new ConflictError(`parent collection of ${path} does not exist`);
  }

  async write(path: string, body: Readable, { size }: WriteOptions = {}): Promise<Entry> {
    checkSize(size);
    if (path === '/') throw new IsADirectoryError();
    await this.#requireParent(path);
    if (await this.#dirOrUndefined(path)) throw new IsADirectoryError();
    const checked = new SizeCheck(size);
    let bodyError: Error | undefined;
    body.on('error', (e: Error) => { bodyError = e; checked.destroy(e); });
    body.pipe(checked);
    const upload = new Upload({
      client: this.#s3,
      params: { Bucket: this.#opts.bucket, Key: this.#key(path), Body: checked },
      partSize: this.#opts.partSize ?? 8 * 1024 * 1024,
      queueSize: 4,
      leavePartsOnError: false, // an aborted upload leaves no parts behind
    });
    try {
      await upload.done();
    } catch (err) {
      // The client's own failure (abort, short body) is not an upstream failure.
      if (bodyError !== undefined) throw bodyError;
      if (err instanceof DavgateError) throw err;
      const cause = (err as { cause?: unknown })?.cause;
      throw cause instanceof DavgateError ? cause : translate(err, path);
    }
    return this.stat(path);
  }

  async mkdir(path: string): Promise<void> {
    if (path === '/' || (await this.#fileOrUndefined(path)) || (await this.#dirOrUndefined(path))) throw new ExistsError();
    await this.#requireParent(path);
    await this.#call(path, () => this.#s3.send(new PutObjectCommand({ Bucket: this.#opts.bucket, Key: this.#dirKey(path), Body: '', ContentLength: 0 })));
  }

  async *#allKeys(prefix: string): AsyncIterable<_Object> {
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.#call(prefix, () => this.#s3.send(new ListObjectsV2Command({ Bucket: this.#opts.bucket, Prefix: prefix, ContinuationToken: token })));
      yield* page.Contents ?? [];
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async remove(path: string): Promise<void> {
    if (path === '/') throw new ForbiddenPathError('the root cannot be removed');
    const entry = await this.stat(path);
    if (entry.kind === 'file') {
      await this.#call(path, () => this.#s3.send(new DeleteObjectCommand({ Bucket: this.#opts.bucket, Key: this.#key(path) })));
      return;
    }
    const prefix = this.#dirKey(path);
    const keys = async function* (all: AsyncIterable<_Object>) {
      for await (const o of all) if (o.Key) yield o.Key;
    };
    await deleteKeys(this.#s3, this.#opts.bucket, keys(this.#allKeys(prefix)), this.#opts.deleteMode ?? 'batch', (fn) => this.#call(path, fn));
  }

  async #copyObject(fromKey: string, toKey: string, size: number, path: string): Promise<void> {
    const source = `${this.#opts.bucket}/${encodeHref(fromKey)}`;
    if (size <= MULTIPART_COPY_LIMIT) {
      await this.#call(path, () => this.#s3.send(new CopyObjectCommand({ Bucket: this.#opts.bucket, Key: toKey, CopySource: source })));
      return;
    }
    // Above 5 GiB a copy must be multipart (UploadPartCopy of ranges).
    const { UploadId } = await this.#call(path, () => this.#s3.send(new CreateMultipartUploadCommand({ Bucket: this.#opts.bucket, Key: toKey })));
    try {
      const parts: Array<{ ETag?: string; PartNumber: number }> = [];
      for (let off = 0, n = 1; off < size; off += COPY_PART, n++) {
        const end = Math.min(size, off + COPY_PART) - 1;
        const r = await this.#call(path, () => this.#s3.send(new UploadPartCopyCommand({
          Bucket: this.#opts.bucket, Key: toKey, UploadId, PartNumber: n, CopySource: source, CopySourceRange: `bytes=${off}-${end}`,
        })));
        parts.push({ ETag: r.CopyPartResult?.ETag, PartNumber: n });
      }
      await this.#call(path, () => this.#s3.send(new CompleteMultipartUploadCommand({ Bucket: this.#opts.bucket, Key: toKey, UploadId, MultipartUpload: { Parts: parts } })));
    } catch (err) {
      await this.#s3.send(new AbortMultipartUploadCommand({ Bucket: this.#opts.bucket, Key: toKey, UploadId })).catch(() => {});
      throw err;
    }
  }

  /** Shared rules of copy and move: destination parent, overwrite, no copy into itself. */
  async #prepareDestination(from: string, to: string, overwrite: boolean): Promise<Entry> {
    checkTransfer(from, to);
    const source = await this.stat(from);
    await this.#requireParent(to);
    const existing = await this.#fileOrUndefined(to) ?? await this.#dirOrUndefined(to);
    if (existing) {
      if (!overwrite) throw new ExistsError();
      if (existing.kind === 'dir' || source.kind === 'dir') await this.remove(to);
    }
    return source;
  }

  async copy(from: string, to: string, { overwrite, shallow = false }: CopyOptions): Promise<void> {
    const source = await this.#prepareDestination(from, to, overwrite);
    if (source.kind === 'file') return this.#copyObject(this.#key(from), this.#key(to), source.size, from);
    await this.#call(to, () => this.#s3.send(new PutObjectCommand({ Bucket: this.#opts.bucket, Key: this.#dirKey(to), Body: '', ContentLength: 0 })));
    if (shallow) return;
    // Server-side copies, several at a time: a tree of thousands of keys would otherwise
    // take one round trip per key in sequence.
    const fromPrefix = this.#dirKey(from);
    const limit = pLimit(COPY_CONCURRENCY);
    const pending: Array<Promise<void>> = [];
    for await (const o of this.#allKeys(fromPrefix)) {
      if (!o.Key || o.Key === fromPrefix) continue;
      const key = o.Key;
      pending.push(limit(() => this.#copyObject(key, this.#dirKey(to) + key.slice(fromPrefix.length), o.Size ?? 0, from)));
      if (pending.length >= 1000) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
  }

  async move(from: string, to: string, { overwrite }: MoveOptions): Promise<void> {
    // S3 has no rename: a server-side copy, then the source goes.
    await this.copy(from, to, { overwrite });
    await this.remove(from);
  }

  /**
   * Abort the multipart uploads under the prefix that were started more than `maxAgeMs` ago:
   * a gateway killed mid-PUT leaves its upload open, its parts billed and invisible. Younger
   * ones may belong to another gateway still writing. Returns how many were aborted.
   */
  async abortStaleUploads(maxAgeMs: number): Promise<number> {
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page: ListMultipartUploadsCommandOutput = await this.#call('/', () => this.#s3.send(new ListMultipartUploadsCommand({
        Bucket: this.#opts.bucket, Prefix: this.#prefix || undefined, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker,
      })));
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Initiated || Date.now() - u.Initiated.getTime() < maxAgeMs) continue;
        await this.#call('/', () => this.#s3.send(new AbortMultipartUploadCommand({ Bucket: this.#opts.bucket, Key: u.Key, UploadId: u.UploadId })));
        aborted++;
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return aborted;
  }

  /** Abort stale uploads now (in the background: the store may be unreachable) and every hour. */
  sweepStaleUploads(maxAgeMs: number, onError: (err: unknown) => void): void {
    const sweep = () => void this.abortStaleUploads(maxAgeMs).catch(onError);
    sweep();
    this.#sweeper = setInterval(sweep, Math.min(STALE_UPLOAD_SWEEP_MS, Math.max(1000, maxAgeMs)));
    this.#sweeper.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#direct?.close();
    this.#s3.destroy();
  }
}
