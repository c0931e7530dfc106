import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BadRequestError, BadXmlError, LockConflictError, LockTokenMismatchError, NotFoundError, PreconditionFailedError } from '../errors.js';
import { encodeHref } from '../davpath.js';
import { checkIfHeader, checkLocks, davPath, identityOf, parseDepth, newMemberPath, xmlLimits, type GatewayContext } from './request.js';
import { child, escapeXml, innerXml, readXml } from './xml.js';
import { conflictOf, type DavState, type LockRecord } from './davstate.js';
import { checkAppleDouble } from './put.js';

// LOCK and UNLOCK (RFC 4918 §9.10, §9.11): exclusive and shared write locks, depth 0 and
// infinity, locks on unmapped URLs (an empty resource is created, §7.3), refresh through any
// resource the lock covers, timeouts capped by configuration. Locks live in DavState.

const DAV = 'DAV:';

/** Seconds from a Timeout header ("Second-600, Infinite"), capped; the cap when absent or unusable. */
export function timeoutSeconds(header: string | string[] | undefined, maxSeconds: number): number {
  if (typeof header === 'string') {
    for (const part of header.split(',')) {
      const t = part.trim();
      if (/^infinite$/i.test(t)) return maxSeconds;
      const m = /^second-(\d{1,10})$/i.exec(t);
      if (m) return Math.min(maxSeconds, Math.max(1, Number(m[1])));
    }
  }
  return maxSeconds;
}

/** One <D:activelock> for lockdiscovery. */
export function activeLockXml(lock: LockRecord): string {
  const remaining = Math.max(0, Math.round((lock.expiresAt - Date.now()) / 1000));
  return `<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:${lock.scope}/></D:lockscope>`
    + `<D:depth>${lock.depth}</D:depth>${lock.owner ? `<D:owner>${lock.owner}</D:owner>` : ''}`
    + `<D:timeout>Second-${remaining}</D:timeout><D:locktoken><D:href>${escapeXml(lock.token)}</D:href></D:locktoken>`
    + `<D:lockroot><D:href>${escapeXml(encodeHref(lock.root))}</D:href></D:lockroot></D:activelock>`;
}

/**
 * A lock held now that a new `scope` lock of `depth` on `path` conflicts with: any exclusive
 * lock, and for an exclusive request any lock at all, covering the resource or (depth infinity)
 * anywhere below it.
 */
export async function conflictingLock(state: DavState, path: string, scope: LockRecord['scope'], depth: LockRecord['depth']): Promise<LockRecord | undefined> {
  return conflictOf(await state.locksWithin(path), path, scope, depth);
}

function lockResponse(reply: FastifyReply, status: number, lock: LockRecord): void {
  reply.code(status).type('application/xml; charset=utf-8').header('lock-token', `<${lock.token}>`)
    .send(`<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:"><D:lockdiscovery>${activeLockXml(lock)}</D:lockdiscovery></D:prop>\n`);
}

export async function handleLock(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  let path = davPath(req);
  const body = await readXml(req.raw, xmlLimits(ctx.config));
  const timeout = timeoutSeconds(req.headers.timeout, Math.floor(ctx.config.webdav.maxLockTimeout / 1000));
  if (!body) {
    // No body: refresh the lock named in the If header, which may be held by an ancestor.
    const tokens = await checkIfHeader(ctx, req, path);
    if (tokens.size === 0) throw new BadRequestError('a LOCK without a body must name the lock to refresh in an If header');
    const lock = (await ctx.state.locksCovering(path)).find((l) => tokens.has(l.token));
    const refreshed = lock && await ctx.state.refreshLock(lock, timeout);
    if (!refreshed) throw new PreconditionFailedError('no lock matching the If header covers this resource');
    return lockResponse(reply, 200, refreshed);
  }
  if (body.ns !== DAV || body.local !== 'lockinfo') throw new BadXmlError('LOCK body must be a DAV:lockinfo element');
  const scopeEl = child(body, DAV, 'lockscope')?.children[0];
  const typeEl = child(body, DAV, 'locktype')?.children[0];
  if (!scopeEl || scopeEl.ns !== DAV || (scopeEl.local !== 'exclusive' && scopeEl.local !== 'shared')) throw new BadXmlError('lockscope must be DAV:exclusive or DAV:shared');
  if (!typeEl || typeEl.ns !== DAV || typeEl.local !== 'write') throw new BadXmlError('locktype must be DAV:write');
  const depth = parseDepth(req, 'infinity', ['0', 'infinity']) as '0' | 'infinity';
  const scope = scopeEl.local;
  // Checked here too, so that a conflicting LOCK of an unmapped URL creates nothing.
  if (await conflictingLock(ctx.state, path, scope, depth)) throw new LockConflictError();
  await checkIfHeader(ctx, req, path);
  let status = 200;
  const identity = identityOf(req);
  try {
    path = (await ctx.cache.getnode(path, identity)).path;
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    path = await newMemberPath(ctx, path, identity);
    checkAppleDouble(ctx, path);
    // A new member of the parent: a lock on the parent must be owned (RFC 4918 §7.5).
    await checkLocks(ctx, path, await checkIfHeader(ctx, req, path), { membership: true });
    await ctx.cache.write(path, Readable.from([]), 0, identity);
    status = 201;
  }
  const ownerEl = child(body, DAV, 'owner');
  const lock: LockRecord = {
    token: `urn:uuid:${randomUUID()}`, root: path, scope, depth, owner: ownerEl ? innerXml(ownerEl) : '',
    principal: req.davUser?.name ?? '', timeoutSeconds: timeout, expiresAt: Date.now() + timeout * 1000,
  };
  // Another request (here or on another gateway) may have locked it meanwhile: the store decides.
  if (await ctx.state.acquireLock(lock)) throw new LockConflictError();
  lockResponse(reply, status, lock);
}

export async function handleUnlock(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = davPath(req);
  const raw = req.headers['lock-token'];
  if (typeof raw !== 'string' || !raw.trim()) throw new BadRequestError('UNLOCK needs a Lock-Token header');
  // Accepted with or without the angle brackets: some clients omit them.
  const token = raw.trim().replace(/^<(.*)>$/, '$1').trim();
  const lock = (await ctx.state.locksCovering(path)).find((l) => l.token === token);
  if (!lock) throw new LockTokenMismatchError();
  await ctx.state.removeLock(lock);
  reply.code(204).send();
}
