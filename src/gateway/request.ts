import { createHash, randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { SHARED, type CacheManager, type Identity } from '../cachemgr/cachemgr.js';
import type { Metrics } from '../metrics.js';
import { canonicalFromUrlPath, joinPath, nameOf, parentOf } from '../davpath.js';
import { BadDepthError, ConflictError, LockedError, NotFoundError, PreconditionFailedError } from '../errors.js';
import { etagOf } from './conditional.js';
import { evaluateIf, parseIf, stateTokens, type ResourceState } from './ifheader.js';
import type { DavState } from './davstate.js';
import type { XmlLimits } from './xml.js';

/** What every route handler needs; built once per app. */
export interface GatewayContext {
  readonly config: Config;
  readonly cache: CacheManager;
  readonly state: DavState;
  readonly metrics: Metrics;
}

/** The configured bounds on XML request bodies. */
export function xmlLimits(config: Config): XmlLimits {
  const w = config.webdav;
  return { maxBytes: w.maxXmlBodyBytes, maxDepth: w.maxXmlDepth, maxElements: w.maxXmlElements };
}

/** The identity a request acts as (set by app.ts for every request; see identityFor). */
export function identityOf(req: FastifyRequest): Identity {
  return req.davIdentity ?? SHARED;
}

/**
 * With pass-through auth the client's own credentials go to the upstream, and a digest of them
 * keys the cache: a wrong password is a different identity, so it can never read what a right
 * one cached. Otherwise all users share one identity (and the gateway authenticates itself).
 */
export function identityFor(config: Config, authorization: string | undefined): Identity {
  const up = config.upstream;
  if (up.type !== 'webdav' || !up.passThroughAuth || !authorization) return SHARED;
  return { key: createHash('sha256').update(authorization).digest('hex'), authorization };
}

/** The still-encoded path of the request target `url`, also in absolute form (RFC 9112 §3.2.2). */
export function rawPathOf(target: string | undefined): string {
  let url = target ?? '/';
  const abs = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(url);
  if (abs) url = url.slice(abs[0].length) || '/';
  // A raw "#" is not a fragment delimiter in a request target: it stays part of the name, so
  // "DELETE /coll/#frag" never deletes /coll/ (litmus delete_fragment).
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * The canonical DAV path of the request URL, spelled as the client spelled it. macOS (and some
 * Linux tools) send names decomposed (NFD), most clients composed (NFC): lookups match either
 * form (CacheManager.getnode) and writes to an existing name keep its spelling, so one name
 * stays one resource, and a new name is stored as written, so the client finds it again.
 */
export function davPath(req: FastifyRequest): string {
  return canonicalFromUrlPath(rawPathOf(req.raw.url));
}

/**
 * Where a new member `path` goes (PUT, MKCOL, LOCK of an unmapped URL, COPY/MOVE destination):
 * its parent must be a collection (else 409, RFC 4918 §9.3.1, §9.7.1, §9.8.5), and the member goes
 * into the parent as stored, whichever Unicode form the client named it in, not beside it.
 */
export async function newMemberPath(ctx: GatewayContext, path: string, identity: Identity): Promise<string> {
  let parent;
  try {
    parent = await ctx.cache.getnode(parentOf(path), identity);
  } catch (err) {
    if (err instanceof NotFoundError) throw new ConflictError('the parent collection does not exist');
    throw err;
  }
  if (parent.kind !== 'dir') throw new ConflictError('the parent is not a collection');
  return joinPath(parent.path, nameOf(path));
}

/** True when the URL names a collection (ends with "/"). */
export function urlHasTrailingSlash(req: FastifyRequest): boolean {
  return rawPathOf(req.raw.url).endsWith('/');
}

/** The client's X-Request-Id when it is a sane token, else a new one. */
export function requestIdOf(headers: IncomingHttpHeaders): string {
  const given = headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : randomUUID();
}

export type Depth = '0' | '1' | 'infinity';

/** Parse the Depth header; `absent` is what RFC 4918 prescribes for the method. */
export function parseDepth(req: FastifyRequest, absent: Depth, allowed: readonly Depth[]): Depth {
  const raw = req.headers.depth;
  if (raw === undefined) return absent;
  const v = String(raw).trim().toLowerCase();
  if ((v === '0' || v === '1' || v === 'infinity') && allowed.includes(v)) return v;
  throw new BadDepthError(`Depth: "${String(raw).slice(0, 32)}" is not allowed here (allowed: ${allowed.join(', ')})`);
}

/** The state of a resource as the If header sees it: its ETag and the tokens of the locks covering it. */
async function resourceState(ctx: GatewayContext, req: FastifyRequest, path: string): Promise<ResourceState> {
  const lockTokens = new Set((await ctx.state.locksCovering(path)).map((l) => l.token));
  try {
    return { etag: etagOf(await ctx.cache.getnode(path, identityOf(req))), lockTokens };
  } catch (err) {
    if (err instanceof NotFoundError) return { lockTokens };
    throw err;
  }
}

/** The If header must hold (else 412, RFC 4918 §10.4); returns the lock tokens it submits. */
export async function checkIfHeader(ctx: GatewayContext, req: FastifyRequest, path: string): Promise<Set<string>> {
  const header = req.headers.if;
  if (typeof header !== 'string' || header.trim() === '') return new Set();
  const parsed = parseIf(header);
  if (!(await evaluateIf(parsed, path, (p) => resourceState(ctx, req, p)))) throw new PreconditionFailedError('the If header does not hold');
  return stateTokens(parsed);
}

/** What a write touches, for the lock check. */
export interface WriteScope {
  /** The whole tree below `path` (DELETE, MOVE source, COPY/MOVE destination). */
  tree?: boolean;
  /** It adds or removes a member of the parent collection, whose locks of any depth then apply (RFC 4918 §7.5). */
  membership?: boolean;
}

/**
 * May this request change `path`? The If header must hold, then every exclusive lock covering
 * the target must have its token submitted, or at least one of the shared locks (else 423).
 */
export async function checkWritable(ctx: GatewayContext, req: FastifyRequest, path: string, scope: WriteScope = {}): Promise<void> {
  await checkLocks(ctx, path, await checkIfHeader(ctx, req, path), scope);
}

/** 423 unless the submitted tokens own the locks that apply to changing `path`. */
export async function checkLocks(ctx: GatewayContext, path: string, tokens: ReadonlySet<string>, scope: WriteScope = {}): Promise<void> {
  const covering = scope.tree ? await ctx.state.locksWithin(path) : await ctx.state.locksCovering(path);
  if (scope.membership && path !== '/') covering.push(...(await ctx.state.locksOn(parentOf(path))).filter((l) => l.depth === '0'));
  if (covering.length === 0) return;
  const exclusive = covering.filter((l) => l.scope === 'exclusive');
  const ok = exclusive.length > 0 ? exclusive.every((l) => tokens.has(l.token)) : covering.some((l) => tokens.has(l.token));
  if (!ok) throw new LockedError();
}
