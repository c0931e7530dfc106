import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Node } from '../cachemgr/cachemgr.js';
import { BadRequestError, IncompleteBodyError, PreconditionFailedError } from '../errors.js';
import type { GatewayContext } from './request.js';
import { etagOf } from './conditional.js';
import { BodyLimit } from './limits.js';

// What every write of a request body needs (PUT, partial PUT, PATCH): the length it declares,
// its If-Match / If-None-Match, and the body streamed into the write so that a client that
// goes away stores nothing.

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
