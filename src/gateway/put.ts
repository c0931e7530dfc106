import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Node } from '../cachemgr/cachemgr.js';
import { splicedSize } from '../cachemgr/splice.js';
import { BadRequestError, ForbiddenError, IncompleteBodyError, IsADirectoryError, NotFoundError, PreconditionFailedError } from '../errors.js';
import { checkWritable, davPath, identityOf, newMemberPath, urlHasTrailingSlash, type GatewayContext } from './request.js';
import { etagOf } from './conditional.js';
import { BodyLimit, checkBodyLength } from './limits.js';
import { contentRangeSpan } from './partial.js';
import { ChecksumCheck, parseOcChecksum, storeChecksums } from './checksums.js';

// PUT (RFC 9110 §9.3.4, RFC 4918 §9.7): streamed write-through. The upstream commits only a
// complete body, so a client abort or a short body leaves nothing behind and nothing cached.

/**
 * The body length the client promised: Content-Length, else macOS's X-Expected-Entity-Length
 * on a chunked upload; undefined for a chunked body of unknown length. No body at all and no
 * length is an empty file (`emptyWithout`), else undefined too.
 */
export function declaredLength(req: FastifyRequest, emptyWithout = true): number | undefined {
  const raw = req.headers['content-length'] ?? (req.headers['transfer-encoding'] ? req.headers['x-expected-entity-length'] : undefined);
  if (raw === undefined) return req.headers['transfer-encoding'] || !emptyWithout ? undefined : 0;
  if (typeof raw !== 'string' || !/^\d{1,16}$/.test(raw)) throw new BadRequestError('Content-Length / X-Expected-Entity-Length is not a number');
  return Number(raw);
}

/** AppleDouble companions ("._name") and Finder's .DS_Store. */
function isAppleDouble(path: string): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return name.startsWith('._') || name === '.DS_Store';
}

/** webdav.appleDouble: 'refuse' turns away every way of creating such a name (403). */
export function checkAppleDouble(ctx: GatewayContext, path: string): void {
  if (ctx.config.webdav.appleDouble === 'refuse' && isAppleDouble(path)) {
    throw new ForbiddenError('AppleDouble and .DS_Store names are refused by this server');
  }
}

/** rclone and ownCloud clients send the file's modification time as X-OC-Mtime (Unix seconds). */
function clientMtime(req: FastifyRequest): number | undefined {
  const raw = req.headers['x-oc-mtime'];
  if (typeof raw !== 'string' || !/^\d{1,12}(\.\d+)?$/.test(raw.trim())) return undefined;
  return Number(raw.trim()) * 1000;
}

export async function handlePut(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  let path = davPath(req);
  if (path === '/' || urlHasTrailingSlash(req)) throw new IsADirectoryError('cannot PUT to a collection');
  checkAppleDouble(ctx, path);
  const size = declaredLength(req);
  const max = ctx.config.webdav.maxPutBytes;
  checkBodyLength(size, max);
  const identity = identityOf(req);
  const range = req.headers['content-range'];
  let old: Node | undefined;
  try {
    old = await ctx.cache.getnode(path, identity);
    if (old.kind === 'dir') throw new IsADirectoryError('cannot PUT to a collection');
    checkWritePreconditions(req, old);
    path = old.path; // the existing name, whichever Unicode form it was created in
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    if (req.headers['if-match']) throw new PreconditionFailedError();
  }
  // Apache's partial PUT: a byte range of the file; on a new file only from byte 0.
  const span = range === undefined ? undefined : contentRangeSpan(range, size, old?.size ?? 0);
  if (span && old) {
    const target = old;
    checkBodyLength(splicedSize(target.size, span.start, span.length), max);
    await checkWritable(ctx, req, path, { membership: false });
    const node = await receiveBody(ctx, req, reply, (body) => ctx.cache.patch(target, span.start, span.length, body, identity));
    reply.code(204).header('etag', etagOf(node)).send();
    return;
  }
  if (!old) path = await newMemberPath(ctx, path, identity); // 409 before the body is streamed
  await checkWritable(ctx, req, path, { membership: !old });
  const oc = req.headers['oc-checksum'];
  const expected = typeof oc === 'string' ? parseOcChecksum(oc) : undefined;
  const check = expected && new ChecksumCheck(expected);
  let node = await receiveBody(ctx, req, reply, async (body) => {
    if (!check) return ctx.cache.write(path, body, size, identity);
    body.once('error', (err) => check.destroy(err));
    check.on('error', () => {}); // the write fails with it (check.errored); the upstream may have stopped listening
    try {
      return await ctx.cache.write(path, body.pipe(check), size, identity);
    } catch (err) {
      // A backend may report the failed body as an error of its own: the mismatch is the answer.
      throw check.errored instanceof BadRequestError ? check.errored : err;
    }
  });
  const mtime = clientMtime(req);
  if (mtime !== undefined && ctx.cache.upstream.setMtime) {
    await ctx.cache.setMtime(path, mtime, identity);
    node = await ctx.cache.getnode(path, identity);
    reply.header('x-oc-mtime', 'accepted');
  }
  // Kept for the version just written (its ETag), so a later change makes them unknown, not wrong.
  if (check?.sums) await storeChecksums(ctx.state, path, etagOf(node), check.sums);
  reply.code(old ? 204 : 201).header('etag', etagOf(node)).send();
}

/** If-Match and If-None-Match of a write to the existing file `old` (412 when they fail). */
export function checkWritePreconditions(req: FastifyRequest, old: Node): void {
  if (req.headers['if-none-match']?.trim() === '*') throw new PreconditionFailedError();
  const ifMatch = req.headers['if-match'];
  if (ifMatch && !ifMatch.split(',').some((t) => t.trim() === '*' || t.trim() === etagOf(old))) throw new PreconditionFailedError();
}

/**
 * Streams the request body (bounded by webdav.maxPutBytes) into `write` and returns what it
 * returns; a client that goes away mid-body fails the write, so nothing is stored.
 */
export async function receiveBody(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply, write: (body: Readable) => Promise<Node>): Promise<Node> {
  // Piped, never handed over: when the upstream fails (disk full) it destroys what it reads,
  // and the request itself must survive that to be answered (507) and mean a real abort.
  const body = req.raw.pipe(new BodyLimit(ctx.config.webdav.maxPutBytes ?? Number.POSITIVE_INFINITY));
  req.raw.on('error', () => body.destroy(new IncompleteBodyError('the client connection failed during the upload')));
  // A client that goes away mid-body must fail the write, not leave it waiting.
  let aborted = false;
  req.raw.on('aborted', () => {
    aborted = true;
    body.destroy(new IncompleteBodyError('client aborted the upload'));
  });
  try {
    return await write(body);
  } catch (err) {
    // Only a client that really went away is an abort: an upstream refusal while the body was
    // still arriving (no space, no parent) is reported as itself.
    if (aborted || (err instanceof IncompleteBodyError && !req.raw.complete)) throw new IncompleteBodyError('the client aborted the upload; nothing was stored');
    // The rest of the body is not wanted: read it away and close after the answer.
    req.raw.unpipe(body);
    req.raw.resume();
    reply.header('connection', 'close');
    throw err;
  }
}
