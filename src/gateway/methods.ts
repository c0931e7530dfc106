import type { FastifyReply, FastifyRequest } from 'fastify';
import { ReadOnlyError } from '../errors.js';
import type { GatewayContext } from './request.js';
import { handleGet } from './get.js';
import { handlePropfind } from './propfind.js';
import { handlePut } from './put.js';
import { handleCopyMove, handleDelete, handleMkcol } from './namespace.js';
import { handleLock, handleUnlock } from './lock.js';
import { handleProppatch } from './proppatch.js';
import { handlePatch } from './partial.js';

// The WebDAV methods the gateway answers, in one table: routing, the Allow header, the CORS
// preflight and the read-only refusal are all derived from it, so a method added or removed
// here is added or removed everywhere.

export type Handler = (ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** What a request body is to the handler: ignored, a bounded XML document, or file content streamed through. */
export type BodyKind = 'none' | 'xml' | 'stream';

/** What a method may be applied to: an existing file, an existing collection, or an unmapped URL. */
export type ResourceKind = 'file' | 'collection' | 'unmapped';

export interface MethodSpec {
  readonly handler: Handler;
  readonly body: BodyKind;
  /** Writes are refused to read-only users. */
  readonly access: 'read' | 'write';
  /** The handler evaluates the If header and the locks covering what it changes (it alone knows the scope). */
  readonly lockCheck: boolean;
  readonly appliesTo: readonly ResourceKind[];
}

const EXISTING: readonly ResourceKind[] = ['file', 'collection'];
const ANY: readonly ResourceKind[] = ['file', 'collection', 'unmapped'];

/** Headers a browser may send on a cross-origin request when its preflight names none. */
const CORS_HEADERS = 'Authorization, Content-Type, Depth, Destination, If, Lock-Token, Overwrite, Timeout, Range, If-Match, If-None-Match, X-Expected-Entity-Length, X-OC-Mtime, X-Update-Range, Content-Range';

/** Class 1 and 2, and sabre/dav's partial updates (PATCH with X-Update-Range), which clients look for here. */
export const DAV_COMPLIANCE = '1, 2, sabredav-partialupdate';

const handleOptions: Handler = async (_ctx, req, reply) => {
  reply.code(200).headers({ 'dav': DAV_COMPLIANCE, 'ms-author-via': 'DAV', 'allow': ALLOW, 'accept-ranges': 'bytes', 'content-length': 0 });
  const preflight = req.headers['access-control-request-method'];
  // The CORS hook set Allow-Origin only for an allowed origin: no preflight answer otherwise.
  if (preflight && reply.getHeader('access-control-allow-origin')) {
    reply.headers({
      'access-control-allow-methods': CORS_METHODS,
      'access-control-allow-headers': req.headers['access-control-request-headers'] ?? CORS_HEADERS,
      'access-control-max-age': 600,
    });
  }
  reply.send();
};

/** In the order Allow lists them. UNLOCK checks its Lock-Token, not the If header. */
export const METHODS = {
  OPTIONS: { handler: handleOptions, body: 'none', access: 'read', lockCheck: false, appliesTo: ANY },
  GET: { handler: handleGet, body: 'none', access: 'read', lockCheck: false, appliesTo: EXISTING },
  HEAD: { handler: handleGet, body: 'none', access: 'read', lockCheck: false, appliesTo: EXISTING },
  PUT: { handler: handlePut, body: 'stream', access: 'write', lockCheck: true, appliesTo: ['file', 'unmapped'] },
  PATCH: { handler: handlePatch, body: 'stream', access: 'write', lockCheck: true, appliesTo: ['file'] },
  DELETE: { handler: handleDelete, body: 'none', access: 'write', lockCheck: true, appliesTo: EXISTING },
  PROPFIND: { handler: handlePropfind, body: 'xml', access: 'read', lockCheck: false, appliesTo: EXISTING },
  PROPPATCH: { handler: handleProppatch, body: 'xml', access: 'write', lockCheck: true, appliesTo: EXISTING },
  // A body is refused (415): extended MKCOL is not supported.
  MKCOL: { handler: handleMkcol, body: 'none', access: 'write', lockCheck: true, appliesTo: ['unmapped'] },
  COPY: { handler: handleCopyMove, body: 'none', access: 'write', lockCheck: true, appliesTo: EXISTING },
  MOVE: { handler: handleCopyMove, body: 'none', access: 'write', lockCheck: true, appliesTo: EXISTING },
  LOCK: { handler: handleLock, body: 'xml', access: 'write', lockCheck: true, appliesTo: ANY },
  UNLOCK: { handler: handleUnlock, body: 'none', access: 'write', lockCheck: false, appliesTo: EXISTING },
} as const satisfies Record<string, MethodSpec>;

export type Method = keyof typeof METHODS;

export const METHOD_NAMES = Object.keys(METHODS) as Method[];

export function isMethod(name: string): name is Method {
  return Object.hasOwn(METHODS, name);
}

/**
 * The methods that apply to a resource of this kind ('existing': to a file and a collection
 * alike, for a resource whose kind is not at hand); every method when the kind is not known.
 */
export function allowFor(kind?: ResourceKind | 'existing'): string {
  const specs = Object.entries(METHODS) as Array<[Method, MethodSpec]>;
  const applies = (s: MethodSpec) => kind === undefined
    || (kind === 'existing' ? s.appliesTo.includes('file') && s.appliesTo.includes('collection') : s.appliesTo.includes(kind));
  return specs.filter(([, s]) => applies(s)).map(([m]) => m).join(', ');
}

/** OPTIONS and 405 answer for any URL, without looking it up (OPTIONS is answered unauthenticated). */
export const ALLOW = allowFor();

/** A browser may use every method the gateway routes. */
export const CORS_METHODS = ALLOW;

/** Read-only users may not use a write method (403, before the handler runs). */
export function checkAccess(method: Method, readOnly: boolean): void {
  if (readOnly && METHODS[method].access === 'write') throw new ReadOnlyError();
}
