import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Node } from '../cachemgr/cachemgr.js';
import { encodeHref, nameOf } from '../davpath.js';
import { BadRequestError, DavgateError } from '../errors.js';
import { contentTypeOf } from './get.js';
import { etagOf } from './conditional.js';
import { davPath, identityOf, parseDepth, urlHasTrailingSlash, type GatewayContext } from './request.js';
import { child, escapeXml, parseXml, readBody, type XmlElement } from './xml.js';
import { deadPropertyXml, splitPropertyName, type DeadProperty } from './deadprops.js';
import type { Lock } from './davstate.js';
import { writeChunk } from './drain.js';

// PROPFIND (RFC 4918 §9.1), streamed: the 207 body is written resource by resource with
// back-pressure, so a 100k-entry directory never sits in memory as one document.

const DAV = 'DAV:';
const LIVE = ['creationdate', 'displayname', 'getcontentlength', 'getcontenttype', 'getetag', 'getlastmodified',
  'resourcetype', 'supportedlock', 'lockdiscovery'] as const;
type Live = typeof LIVE[number];

type Request =
  | { kind: 'allprop' }
  | { kind: 'propname' }
  | { kind: 'prop'; props: Array<{ ns: string; local: string }> };

export function parsePropfindBody(root: XmlElement | undefined): Request {
  if (!root) return { kind: 'allprop' };
  if (root.ns !== DAV || root.local !== 'propfind') throw new BadRequestError('PROPFIND body must be a DAV:propfind element', 'DAVGATE_BAD_XML');
  if (child(root, DAV, 'propname')) return { kind: 'propname' };
  const prop = child(root, DAV, 'prop');
  if (prop) return { kind: 'prop', props: prop.children.map((c) => ({ ns: c.ns, local: c.local })) };
  if (child(root, DAV, 'allprop')) return { kind: 'allprop' };
  throw new BadRequestError('PROPFIND body needs one of allprop, propname, prop', 'DAVGATE_BAD_XML');
}

function iso8601(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const SUPPORTED_LOCK = '<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>'
  + '<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>';

export function activeLock(lock: Lock, root: string): string {
  const scope = lock.lockKind.scope.value.toLowerCase() === 'shared' ? 'shared' : 'exclusive';
  const remaining = Math.max(0, Math.round((lock.expirationDate - Date.now()) / 1000));
  // Owners are stored as XML we serialised ourselves (gateway/lock.ts).
  const owner = typeof lock.owner === 'string' ? lock.owner : lock.owner ? deadPropertyXml(lock.owner as DeadProperty['value']) : '';
  return `<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:${scope}/></D:lockscope>`
    + `<D:depth>${lock.depth === 0 ? '0' : 'infinity'}</D:depth>${owner ? `<D:owner>${owner}</D:owner>` : ''}`
    + `<D:timeout>Second-${remaining}</D:timeout><D:locktoken><D:href>${escapeXml(lock.uuid)}</D:href></D:locktoken>`
    + `<D:lockroot><D:href>${escapeXml(encodeHref(root))}</D:href></D:lockroot></D:activelock>`;
}

/** The value of a live property, or undefined when it does not apply to this node. */
function liveValue(ctx: GatewayContext, node: Node, name: Live): string | undefined {
  switch (name) {
    case 'creationdate': return iso8601(node.birthtimeMs);
    case 'displayname': return escapeXml(nameOf(node.path));
    case 'getcontentlength': return node.kind === 'file' ? String(node.size) : undefined;
    case 'getcontenttype': return node.kind === 'file' ? escapeXml(contentTypeOf(node.path)) : undefined;
    case 'getetag': return escapeXml(etagOf(node));
    case 'getlastmodified': return new Date(node.mtimeMs).toUTCString();
    case 'resourcetype': return node.kind === 'dir' ? '<D:collection/>' : '';
    case 'supportedlock': return SUPPORTED_LOCK;
    case 'lockdiscovery': return ctx.state.locksCovering(node.path).map((l) => activeLock(l.lock, l.root)).join('');
  }
}

/** One <D:response> for a node, with only the properties asked for. */
export function responseXml(ctx: GatewayContext, node: Node, req: Request): string {
  const href = encodeHref(node.path) + (node.kind === 'dir' && node.path !== '/' ? '/' : '');
  const dead = ctx.state.deadProperties(node.path);
  const found: string[] = [];
  const missing: string[] = [];
  if (req.kind === 'prop') {
    let nsCount = 0;
    for (const p of req.props) {
      const live = p.ns === DAV ? (LIVE as readonly string[]).includes(p.local) : false;
      const value = live ? liveValue(ctx, node, p.local as Live) : undefined;
      const deadProp = !live && dead ? dead[p.ns + p.local] : undefined;
      const tag = p.ns === DAV ? `D:${p.local}` : `X${nsCount}:${p.local}`;
      const decl = p.ns === DAV ? '' : p.ns ? ` xmlns:X${nsCount++}="${escapeXml(p.ns, true)}"` : ` xmlns=""`;
      const el = p.ns === DAV || p.ns ? tag : p.local;
      if (value !== undefined) found.push(value === '' ? `<${el}${decl}/>` : `<${el}${decl}>${value}</${el}>`);
      else if (deadProp) found.push(`<${el}${decl}>${deadPropertyXml(deadProp.value)}</${el}>`);
      else missing.push(`<${el}${decl}/>`);
    }
  } else {
    for (const name of LIVE) {
      const value = liveValue(ctx, node, name);
      if (value === undefined) continue;
      found.push(req.kind === 'propname' || value === '' ? `<D:${name}/>` : `<D:${name}>${value}</D:${name}>`);
    }
    let i = 0;
    for (const [name, prop] of Object.entries(dead ?? {})) {
      const { ns, local } = splitPropertyName(name);
      const decl = ` xmlns:Y${i}="${escapeXml(ns, true)}"`;
      const tag = `Y${i++}:${local}`;
      found.push(req.kind === 'propname' ? `<${tag}${decl}/>` : `<${tag}${decl}>${deadPropertyXml(prop.value)}</${tag}>`);
    }
  }
  let out = `<D:response><D:href>${href}</D:href>`;
  if (found.length) out += `<D:propstat><D:prop>${found.join('')}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>`;
  if (missing.length) out += `<D:propstat><D:prop>${missing.join('')}</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>`;
  return out + '</D:response>\n';
}


export async function handlePropfind(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = davPath(req);
  const depth = parseDepth(req, 'infinity', ['0', '1', 'infinity']);
  if (depth === 'infinity' && !ctx.config.webdav.allowInfiniteDepth) {
    req.raw.resume();
    throw new DavgateError('DAVGATE_FINITE_DEPTH', 'Depth: infinity is disabled on this server');
  }
  const body = await readBody(req.raw, ctx.config.webdav.maxXmlBodyBytes);
  const request = parsePropfindBody(parseXml(body));
  const identity = identityOf(req);
  const node = await ctx.cache.getnode(path, identity);
  if (node.kind === 'file' && urlHasTrailingSlash(req) && path !== '/') throw new DavgateError('DAVGATE_NOT_FOUND', 'not a collection');
  reply.hijack();
  const res = reply.raw;
  res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8' });
  try {
    await writeChunk(res, `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">\n` + responseXml(ctx, node, request));
    if (node.kind === 'dir' && depth !== '0') {
      const pending = [node.path];
      while (pending.length) {
        const dir = pending.shift()!;
        for await (const c of ctx.cache.list(dir, identity)) {
          await writeChunk(res, responseXml(ctx, c, request));
          if (depth === 'infinity' && c.kind === 'dir') pending.push(c.path);
        }
      }
    }
    res.end('</D:multistatus>\n');
  } catch (err) {
    req.log.warn({ err }, 'PROPFIND aborted mid-body');
    res.destroy();
  }
}
