import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Node } from '../cachemgr/cachemgr.js';
import { BadXmlError, FiniteDepthError, NotFoundError } from '../errors.js';
import { textOf, type NodeText } from './node-text.js';
import { davPath, identityOf, parseDepth, urlHasTrailingSlash, xmlLimits, type GatewayContext } from './request.js';
import { child, escapeXml, readXml, type XmlElement } from './xml.js';
import { propKey, type DavStateView, type DeadProperty } from './davstate.js';
import { INTERNAL_NS, OC_NS, checksumsXml } from './checksums.js';
import { activeLockXml } from './lock.js';
import { clientGone } from './drain.js';
import { startBody } from './compress.js';

// PROPFIND (RFC 4918 §9.1), streamed: the 207 body is written resource by resource with
// back-pressure, so a 100k-entry directory never sits in memory as one document.

const DAV = 'DAV:';
const LIVE = ['creationdate', 'displayname', 'getcontentlength', 'getcontenttype', 'getetag', 'getlastmodified',
  'resourcetype', 'supportedlock', 'lockdiscovery'] as const;
/** RFC 4331 quota properties: answered only when asked for by name (never in allprop). */
const QUOTA = ['quota-available-bytes', 'quota-used-bytes'] as const;
type Live = typeof LIVE[number] | typeof QUOTA[number];

/** davgate's own properties, answered only when asked for by name. */
export const DAVGATE_NS = 'urn:davgate';

/**
 * Per-request facts that are the same for every entry (fetched once), and the cache state of
 * a file (davgate's `cache` property) when it was asked for.
 */
export interface PropfindExtras {
  quota?: { availableBytes: number; usedBytes: number };
  cacheOf?: (node: Node) => string | undefined;
  /** The MD5 the upstream knows of a file (an S3 ETag), when it can. */
  md5Of?: (node: Node) => string | undefined;
}

/** The `cache` property of a file: bytes held by this gateway, its size, and whether it is pinned. */
export function cacheXml(cachedBytes: number, size: number, pinned = false): string {
  const el = (name: string, v: string | number) => `<${name} xmlns="${DAVGATE_NS}">${v}</${name}>`;
  return el('cached-bytes', cachedBytes) + el('size', size) + el('pinned', pinned ? 'true' : 'false');
}

type Request =
  | { kind: 'allprop' }
  | { kind: 'propname' }
  | { kind: 'prop'; props: Array<{ ns: string; local: string }> };

export function parsePropfindBody(root: XmlElement | undefined): Request {
  if (!root) return { kind: 'allprop' };
  if (root.ns !== DAV || root.local !== 'propfind') throw new BadXmlError('PROPFIND body must be a DAV:propfind element');
  if (child(root, DAV, 'propname')) return { kind: 'propname' };
  const prop = child(root, DAV, 'prop');
  if (prop) return { kind: 'prop', props: prop.children.map((c) => ({ ns: c.ns, local: c.local })) };
  if (child(root, DAV, 'allprop')) return { kind: 'allprop' };
  throw new BadXmlError('PROPFIND body needs one of allprop, propname, prop');
}

const SUPPORTED_LOCK = '<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>'
  + '<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>';

/** The value of a live property, or undefined when it does not apply to this node. */
function liveValue(state: DavStateView, node: Node, t: NodeText, name: Live, extras: PropfindExtras): string | undefined {
  switch (name) {
    case 'quota-available-bytes': return extras.quota ? String(extras.quota.availableBytes) : undefined;
    case 'quota-used-bytes': return extras.quota ? String(extras.quota.usedBytes) : undefined;
    case 'creationdate': return t.created;
    case 'displayname': return t.displayNameXml;
    case 'getcontentlength': return node.kind === 'file' ? String(node.size) : undefined;
    case 'getcontenttype': return node.kind === 'file' ? t.contentTypeXml : undefined;
    case 'getetag': return t.etag; // hex digits in quotes: nothing to escape
    case 'getlastmodified': return t.lastModified;
    case 'resourcetype': return node.kind === 'dir' ? '<D:collection/>' : '';
    case 'supportedlock': return SUPPORTED_LOCK;
    case 'lockdiscovery': return state.locksCovering(node.path).map(activeLockXml).join('');
  }
}

/** davgate's `cache` and ownCloud's `checksums` of a file, asked for by name. */
function ownValue(node: Node, t: NodeText, p: { ns: string; local: string }, dead: ReadonlyMap<string, DeadProperty> | undefined, extras: PropfindExtras): string | undefined {
  if (node.kind !== 'file') return undefined;
  if (p.ns === DAVGATE_NS && p.local === 'cache') return extras.cacheOf?.(node);
  if (p.ns === OC_NS && p.local === 'checksums') return checksumsXml(dead, t.etag, extras.md5Of?.(node));
  return undefined;
}

/** One <D:response> for a node, with only the properties asked for. */
export function responseXml(state: DavStateView, node: Node, req: Request, extras: PropfindExtras = {}): string {
  // Built by concatenation (no arrays to join): a listing makes one per entry.
  const t = textOf(node);
  const dead = state.properties(node.path);
  let found = '';
  let missing = '';
  if (req.kind === 'prop') {
    let n = 0;
    for (const p of req.props) {
      const live = p.ns === DAV && ((LIVE as readonly string[]).includes(p.local) || (QUOTA as readonly string[]).includes(p.local));
      const value = live ? liveValue(state, node, t, p.local as Live, extras) : ownValue(node, t, p, dead, extras);
      const deadProp = live || value !== undefined || p.ns === INTERNAL_NS ? undefined : dead?.get(propKey(p.ns, p.local));
      const tag = p.ns === DAV ? `D:${p.local}` : p.ns ? `X${n}:${p.local}` : p.local;
      const decl = p.ns === DAV ? '' : p.ns ? ` xmlns:X${n++}="${escapeXml(p.ns, true)}"` : ' xmlns=""';
      const content = value ?? deadProp?.xml;
      const attrs = decl + (deadProp?.lang ? ` xml:lang="${escapeXml(deadProp.lang, true)}"` : '');
      if (content === undefined) missing += `<${tag}${decl}/>`;
      else found += content === '' ? `<${tag}${attrs}/>` : `<${tag}${attrs}>${content}</${tag}>`;
    }
  } else {
    for (const name of LIVE) {
      const value = liveValue(state, node, t, name, extras);
      if (value === undefined) continue;
      found += req.kind === 'propname' || value === '' ? `<D:${name}/>` : `<D:${name}>${value}</D:${name}>`;
    }
    let n = 0;
    for (const p of dead?.values() ?? []) {
      if (p.ns === INTERNAL_NS) continue; // davgate's own records (checksums) are no properties
      const tag = p.ns === DAV ? `D:${p.local}` : p.ns ? `Y${n}:${p.local}` : p.local;
      const decl = (p.ns === DAV ? '' : p.ns ? ` xmlns:Y${n++}="${escapeXml(p.ns, true)}"` : ' xmlns=""')
        + (p.lang && req.kind !== 'propname' ? ` xml:lang="${escapeXml(p.lang, true)}"` : '');
      found += req.kind === 'propname' || p.xml === '' ? `<${tag}${decl}/>` : `<${tag}${decl}>${p.xml}</${tag}>`;
    }
  }
  let out = `<D:response><D:href>${t.href}</D:href>`;
  if (found) out += `<D:propstat><D:prop>${found}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>`;
  if (missing) out += `<D:propstat><D:prop>${missing}</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>`;
  return out + '</D:response>\n';
}

export async function handlePropfind(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = davPath(req);
  // RFC 4918 makes a missing Depth mean infinity; clients that omit it (Windows among them)
  // want a listing, so without infinity enabled it is answered as Depth 1.
  const depth = parseDepth(req, ctx.config.webdav.allowInfiniteDepth ? 'infinity' : '1', ['0', '1', 'infinity']);
  if (depth === 'infinity' && !ctx.config.webdav.allowInfiniteDepth) {
    req.raw.resume();
    throw new FiniteDepthError();
  }
  const request = parsePropfindBody(await readXml(req.raw, xmlLimits(ctx.config)));
  const identity = identityOf(req);
  const node = await ctx.cache.getnode(path, identity);
  if (node.kind === 'file' && urlHasTrailingSlash(req) && path !== '/') throw new NotFoundError('collection');
  const extras: PropfindExtras = {};
  if (request.kind === 'prop' && request.props.some((p) => p.ns === DAV && p.local.startsWith('quota-'))) {
    extras.quota = await ctx.cache.quota(path, identity).catch(() => undefined);
  }
  const md5 = ctx.cache.upstream.contentMd5?.bind(ctx.cache.upstream);
  if (md5) extras.md5Of = (n) => md5(n.validator);
  if (request.kind === 'prop' && request.props.some((p) => p.ns === DAVGATE_NS && p.local === 'cache')) {
    extras.cacheOf = (n) => cacheXml(ctx.cache.cachedBytes(n), n.size, ctx.cache.isPinned(n));
  }
  // The listing is started before the status is sent, so an upstream that cannot list
  // (down, gone) is still a proper 502/504/404, not a cut connection.
  const listing = node.kind === 'dir' && depth !== '0' ? ctx.cache.list(node.path, identity) : undefined;
  const first = await listing?.next();
  // Entries are answered in batches: the shared state of a batch is read in one round trip.
  const view = await ctx.state.view([node.path]);
  reply.hijack();
  const res = reply.raw;
  const body = startBody(req.headers['accept-encoding'], res, 207, { 'content-type': 'application/xml; charset=utf-8' });
  // Responses are batched into ~64 KiB writes: one write per entry costs more than the XML.
  let buffered = `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">\n` + responseXml(view, node, request, extras);
  const batch: Node[] = [];
  const pending: string[] = [];
  const flush = async () => {
    const v = await ctx.state.view(batch.map((n) => n.path));
    for (const c of batch) buffered += responseXml(v, c, request, extras);
    batch.length = 0;
    if (buffered.length >= 65536) { await body.write(buffered); buffered = ''; }
  };
  const add = async (c: Node) => {
    batch.push(c);
    if (batch.length >= 256) await flush();
    if (depth === 'infinity' && c.kind === 'dir') pending.push(c.path);
  };
  try {
    if (listing && first && !first.done) {
      await add(first.value);
      for await (const c of listing) await add(c);
    }
    while (pending.length) {
      for await (const c of ctx.cache.list(pending.shift()!, identity)) await add(c);
    }
    await flush();
    body.end(buffered + '</D:multistatus>\n');
  } catch (err) {
    if (clientGone(res)) req.log.debug({ err }, 'PROPFIND ended by the client');
    else req.log.warn({ err }, 'PROPFIND aborted mid-body');
    res.destroy();
  }
}
