import type { FastifyReply } from 'fastify';
import { DavgateError, IsADirectoryError } from '../errors.js';
import { basicChallenge } from './auth.js';
import { allowFor } from './methods.js';
import { escapeXml } from './xml.js';

// The one place where an error becomes what a client sees: status, headers, body.

export interface ErrorResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly contentType: string;
  readonly body: string;
}

export interface ErrorResponseOptions {
  /** auth.realm: a 401 always says where to authenticate. */
  readonly realm: string;
}

/** A DAV:error body naming one RFC 4918 precondition or postcondition element. */
export function davErrorBody(condition: string): string {
  return `<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:${condition}/></D:error>\n`;
}

/**
 * The answer to `err`. A DavgateError says what went wrong in its own words; anything else is
 * a bug of ours, answered 500 without its message (which may name internals).
 */
export function errorResponse(err: unknown, opts: ErrorResponseOptions): ErrorResponse {
  if (!(err instanceof DavgateError)) {
    return { status: 500, headers: {}, contentType: 'text/plain; charset=utf-8', body: 'internal error\n' };
  }
  const status = err.status;
  const headers = { ...err.headers() };
  // The gateway's own 401 and the upstream refusing pass-through credentials alike: ask again.
  if (status === 401 && !headers['www-authenticate']) headers['www-authenticate'] = basicChallenge(opts.realm);
  // HTTP requires Allow on every 405: PUT to a collection, MKCOL on a name that exists.
  if (status === 405 && !headers.allow) headers.allow = allowFor(err instanceof IsADirectoryError ? 'collection' : 'existing');
  const condition = err.condition;
  if (condition) return { status, headers, contentType: 'application/xml; charset=utf-8', body: davErrorBody(condition) };
  return { status, headers, contentType: 'text/plain; charset=utf-8', body: escapeXml(err.message) + '\n' };
}

/**
 * Answer an error. Unknown errors and 5xx are logged with their stack (and counted as internal
 * errors by the request hook, from the status); once the headers are out, only cutting the
 * connection tells the client something went wrong.
 */
export function sendError(reply: FastifyReply, err: unknown, opts: ErrorResponseOptions): void {
  const r = errorResponse(err, opts);
  if (!(err instanceof DavgateError) || r.status >= 500) reply.log.error({ err }, 'request failed');
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy();
    return;
  }
  reply.code(r.status).headers(r.headers).type(r.contentType).send(r.body);
}
