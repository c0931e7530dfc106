import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import webdavServer from 'webdav-server';
import { BadRequestError, ConflictError, DavgateError, NotFoundError, PreconditionFailedError } from '../errors.js';
import { parentOf } from '../davpath.js';
import { assertUnlocked, davPath, identityOf, parseDepth, submittedTokens, type GatewayContext } from './request.js';
import { activeLock } from './propfind.js';
import { child, escapeXml, parseXml, readBody, type XmlElement } from './xml.js';

const { v2 } = webdavServer;

// LOCK and UNLOCK (RFC 4918 §9.10, §9.11). Ours rather than webdav-server's: its LOCK
// grants an exclusive lock over a shared one (it compares the scope with the lock *type*),
// writes scope/type elements outside the DAV: namespace, cannot refresh a lock through a
// member of a locked collection, and makes tokens from Math.random.
// Locks live in DavState's managers, where PROPFIND's lockdiscovery reads them.

const DAV = 'DAV:';
const MAX_TIMEOUT_S = 3600;

/** Seconds from a Timeout header ("Second-600, Infinite"), capped; undefined if absent or unusable. */
export function timeoutSeconds(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string') return undefined;
  for (const part of header.split(',')) {
    const t = part.trim();
    if (/^infinite$/i.test(t)) return MAX_TIMEOUT_S;
    const m = /^second-(\d{1,10})$/i.exec(t);
    if (m) return Math.min(MAX_TIMEOUT_S, Math.max(1, Number(m[1])));
  }
  return undefined;
}

/** Re-serialise the content of <D:owner> (text or elements such as <D:href>), namespaces kept. */
function ownerXml(el: XmlElement): string {
  const inner = (e: XmlElement, depth: number): string => {
    const tag = e.ns === DAV ? `D:${e.local}` : e.ns ? `O${depth}:${e.local}` : e.local;
    const decl = e.ns === DAV ? '' : e.ns ? ` xmlns:O${depth}="${escapeXml(e.ns, true)}"` : '';
    const body = escapeXml(e.text.trim()) + e.children.map((c) => inner(c, depth + 1)).join('');
    return `<${tag}${decl}>${body}</${tag}>`;
  };
  return escapeXml(el.text.trim()) + el.children.map((c) => inner(c, 0)).join('');
}

function lockResponse(reply: FastifyReply, status: number, lock: InstanceType<typeof v2.Lock>, root: string): void {
  reply.code(status).type('application/xml; charset=utf-8').header('lock-token', `<${lock.uuid}>`)
    .send(`<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:"><D:lockdiscovery>${activeLock(lock, root)}</D:lockdiscovery></D:prop>\n`);
}

export async function handleLock(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = davPath(req);
  const body = parseXml(await readBody(req.raw, ctx.config.webdav.maxXmlBodyBytes));
  const timeout = timeoutSeconds(req.headers.timeout) ?? MAX_TIMEOUT_S;
  if (!body) {
    // No body: a refresh of a lock named in the If header, possibly held by an ancestor.
    const tokens = submittedTokens(req);
    if (tokens.size === 0) throw new BadRequestError('LOCK without a body must name the lock to refresh in an If header');
    const found = ctx.state.locksCovering(path).find((l) => tokens.has(l.lock.uuid));
    if (!found) throw new PreconditionFailedError('no lock matching the If header covers this resource');
    found.lock.refresh(timeout);
    return lockResponse(reply, 200, found.lock, found.root);
  }
  if (body.ns !== DAV || body.local !== 'lockinfo') throw new BadRequestError('LOCK body must be a DAV:lockinfo element', 'DAVGATE_BAD_XML');
  const scopeEl = child(body, DAV, 'lockscope')?.children[0];
  const typeEl = child(body, DAV, 'locktype')?.children[0];
  if (!scopeEl || scopeEl.ns !== DAV || !['exclusive', 'shared'].includes(scopeEl.local)) throw new BadRequestError('lockscope must be DAV:exclusive or DAV:shared', 'DAVGATE_BAD_XML');
  if (!typeEl || typeEl.ns !== DAV || typeEl.local !== 'write') throw new BadRequestError('locktype must be DAV:write', 'DAVGATE_BAD_XML');
  const depth = parseDepth(req, 'infinity', ['0', 'infinity']);
  const exclusive = scopeEl.local === 'exclusive';
  // Conflicts: any lock covering the resource, or (depth infinity) any lock below it.
  const existing = depth === 'infinity' ? ctx.state.locksWithin(path) : ctx.state.locksCovering(path);
  if (existing.length && (exclusive || existing.some((l) => l.lock.lockKind.scope.value.toLowerCase() !== 'shared'))) {
    throw new DavgateError('DAVGATE_LOCKED', 'resource is already locked');
  }
  let status = 200;
  const identity = identityOf(req);
  try {
    await ctx.cache.getnode(path, identity);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    // Locking an unmapped URL creates an empty resource (RFC 4918 §7.3).
    try {
      await ctx.cache.getnode(parentOf(path), identity);
    } catch (e) {
      if (e instanceof NotFoundError) throw new ConflictError('parent collection does not exist');
      throw e;
    }
    assertUnlocked(ctx, req, path);
    await ctx.cache.write(path, Readable.from([]), 0, identity);
    status = 201;
  }
  const ownerEl = child(body, DAV, 'owner');
  const kind = new v2.LockKind(exclusive ? v2.LockScope.Exclusive : v2.LockScope.Shared, v2.LockType.Write, timeout);
  const lock = new v2.Lock(kind, req.davUser?.name ?? '', ownerEl ? ownerXml(ownerEl) : '', depth === '0' ? 0 : -1);
  lock.uuid = `urn:uuid:${randomUUID()}`;
  ctx.state.lockManager(path).locks.push(lock);
  lockResponse(reply, status, lock, path);
}

export async function handleUnlock(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = davPath(req);
  const raw = req.headers['lock-token'];
  if (typeof raw !== 'string' || !raw.trim()) throw new BadRequestError('UNLOCK needs a Lock-Token header');
  const token = raw.trim().replace(/^<(.*)>$/, '$1').trim();
  const found = ctx.state.locksCovering(path).find((l) => l.lock.uuid === token);
  if (!found) {
    reply.code(409).type('application/xml; charset=utf-8')
      .send('<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:lock-token-matches-request-uri/></D:error>\n');
    return;
  }
  const lm = ctx.state.lockManager(found.root);
  lm.locks = lm.locks.filter((l) => l.uuid !== token);
  reply.code(204).send();
}
