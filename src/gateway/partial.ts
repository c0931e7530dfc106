import type { FastifyReply, FastifyRequest } from 'fastify';
import { BadRequestError, IsADirectoryError, LengthRequiredError, RangeNotSatisfiableError, UnsupportedMediaTypeError } from '../errors.js';
import type { Identity, Node } from '../cachemgr/cachemgr.js';
import { splicedSize } from '../cachemgr/splice.js';
import { checkWritable, davPath, identityOf, urlHasTrailingSlash, type GatewayContext } from './request.js';
import { etagOf } from './conditional.js';
import { checkBodyLength } from './limits.js';
import { checkWritePreconditions, declaredLength, receiveBody } from './upload.js';

// Partial updates: a byte range of an existing file, written without sending the whole file.
// Two dialects: PUT with Content-Range (Apache mod_dav) and PATCH with X-Update-Range
// (sabre/dav, whose clients find it by "sabredav-partialupdate" in the DAV header). The range
// must start within the file or at its end (no holes); it may run past the end (the file
// grows). The update is committed like any write: whole, or not at all.

/** Where the body goes: `length` bytes from `start`. */
export interface Span { start: number; length: number }

const NUM = '(\\d{1,16})';
const CONTENT_RANGE = new RegExp(`^bytes ${NUM}-${NUM}/(?:${NUM}|\\*)$`, 'i');
const UPDATE_RANGE = new RegExp(`^bytes=(?:${NUM}-${NUM}?|-${NUM})$`, 'i');

function checkLength(bodyLength: number | undefined, span: Span, size: number): Span {
  if (bodyLength === undefined) throw new LengthRequiredError('a partial update needs a Content-Length');
  if (bodyLength !== span.length) throw new BadRequestError(`Content-Length ${bodyLength} does not match the range's ${span.length} bytes`);
  if (span.start > size) throw new RangeNotSatisfiableError(size);
  return span;
}

/** `Content-Range: bytes first-last/total` (or `/*`) of a PUT to a file of `size` bytes. */
export function contentRangeSpan(header: string, bodyLength: number | undefined, size: number): Span {
  const m = CONTENT_RANGE.exec(header.trim());
  if (!m) throw new BadRequestError('Content-Range must be "bytes first-last/length" or "bytes first-last/*"');
  const [first, last] = [Number(m[1]), Number(m[2])];
  if (last < first) throw new BadRequestError('Content-Range ends before it starts');
  if (m[3] !== undefined && Number(m[3]) <= last) throw new BadRequestError('Content-Range runs past its own length');
  return checkLength(bodyLength, { start: first, length: last - first + 1 }, size);
}

/** `X-Update-Range: bytes=first-last | bytes=first- | bytes=-n | append` of a PATCH. */
export function updateRangeSpan(header: string, bodyLength: number | undefined, size: number): Span {
  const value = header.trim();
  if (bodyLength === undefined) throw new LengthRequiredError('a partial update needs a Content-Length');
  if (value.toLowerCase() === 'append') return checkLength(bodyLength, { start: size, length: bodyLength }, size);
  const m = UPDATE_RANGE.exec(value);
  if (!m) throw new BadRequestError('X-Update-Range must be "bytes=first-last", "bytes=first-", "bytes=-n" or "append"');
  if (m[3] !== undefined) { // the last n bytes' place
    const n = Number(m[3]);
    if (n === 0 || n > size) throw new RangeNotSatisfiableError(size);
    return checkLength(bodyLength, { start: size - n, length: bodyLength }, size);
  }
  const first = Number(m[1]);
  if (m[2] === undefined) return checkLength(bodyLength, { start: first, length: bodyLength }, size);
  const last = Number(m[2]);
  if (last < first) throw new BadRequestError('X-Update-Range ends before it starts');
  return checkLength(bodyLength, { start: first, length: last - first + 1 }, size);
}

export const PARTIAL_UPDATE_TYPE = 'application/x-sabredav-partialupdate';

/** PATCH (RFC 5789) in sabre/dav's partial-update format. */
export async function handlePatch(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = davPath(req);
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== PARTIAL_UPDATE_TYPE) throw new UnsupportedMediaTypeError(`PATCH takes a body of type ${PARTIAL_UPDATE_TYPE}`);
  const header = req.headers['x-update-range'];
  if (typeof header !== 'string') throw new BadRequestError('PATCH needs an X-Update-Range header');
  const identity = identityOf(req);
  const old = await ctx.cache.getnode(path, identity);
  if (old.kind === 'dir' || urlHasTrailingSlash(req)) throw new IsADirectoryError('cannot PATCH a collection');
  checkWritePreconditions(req, old);
  const span = updateRangeSpan(header, declaredLength(req, false), old.size);
  checkBodyLength(span.length, ctx.config.webdav.maxPutBytes);
  await writeSpan(ctx, req, reply, old, span, identity);
}

/**
 * Writes the request body over `span` of file `old` (PUT with Content-Range, PATCH): the new
 * file within webdav.maxPutBytes, its locks checked; answered 204 with the new ETag.
 */
export async function writeSpan(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply, old: Node, span: Span, identity: Identity): Promise<void> {
  checkBodyLength(splicedSize(old.size, span.start, span.length), ctx.config.webdav.maxPutBytes);
  await checkWritable(ctx, req, old.path, { membership: false });
  const node = await receiveBody(ctx, req, reply, (body) => ctx.cache.patch(old, span.start, span.length, body, identity));
  reply.code(204).header('etag', etagOf(node)).send();
}
