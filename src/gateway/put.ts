import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Node } from '../cachemgr/cachemgr.js';
import { BadRequestError, ForbiddenError, IsADirectoryError, NotFoundError, PreconditionFailedError } from '../errors.js';
import { checkWritable, davPath, identityOf, newMemberPath, urlHasTrailingSlash, type GatewayContext } from './request.js';
import { etagOf } from './conditional.js';
import { checkBodyLength } from './limits.js';
import { contentRangeSpan, writeSpan } from './partial.js';
import { checkWritePreconditions, declaredLength, receiveBody } from './upload.js';
import { ChecksumCheck, parseOcChecksum, storeChecksums } from './checksums.js';

// PUT (RFC 9110 §9.3.4, RFC 4918 §9.7): streamed write-through. The upstream commits only a
// complete body, so a client abort or a short body leaves nothing behind and nothing cached.

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
  if (span && old) return writeSpan(ctx, req, reply, old, span, identity);
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
