import type { FastifyReply, FastifyRequest } from 'fastify';
import { BadXmlError, ProtectedPropertyError } from '../errors.js';
import { DAVGATE_NS } from './propfind.js';
import { INTERNAL_NS, OC_NS } from './checksums.js';
import { encodeHref } from '../davpath.js';
import { checkWritable, davPath, identityOf, xmlLimits, type GatewayContext } from './request.js';
import { escapeXml, innerXml, readXml, type XmlElement } from './xml.js';
import { propKey, type DeadProperty } from './davstate.js';

// PROPPATCH (RFC 4918 §9.2): instructions run in document order and all or none apply
// (a failing one makes the others 424 Failed Dependency). Values are kept as XML with their
// namespaces. Live properties computed from the upstream are protected (403).

const DAV = 'DAV:';
const MS = 'urn:schemas-microsoft-com:';

/** Computed from the upstream or the lock table; a client cannot set them. */
export const PROTECTED = new Set(['creationdate', 'displayname', 'getcontentlength', 'getcontenttype', 'getetag',
  'getlastmodified', 'lockdiscovery', 'resourcetype', 'supportedlock', 'quota-available-bytes', 'quota-used-bytes']);

/** Live properties (DAV's, ours, ownCloud's checksums) and davgate's own records cannot be set. */
function isProtected(ns: string, local: string): boolean {
  return (ns === DAV && PROTECTED.has(local)) || (ns === DAVGATE_NS && local === 'cache') || ns === INTERNAL_NS || (ns === OC_NS && local === 'checksums');
}

interface Instruction { op: 'set' | 'remove'; el: XmlElement; lang?: string }

const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const langOf = (el: XmlElement): string | undefined => el.attrs.find((a) => a.ns === XML_NS && a.local === 'lang')?.value;

function instructions(root: XmlElement | undefined): Instruction[] {
  if (!root || root.ns !== DAV || root.local !== 'propertyupdate') throw new BadXmlError('PROPPATCH body must be a DAV:propertyupdate element');
  const out: Instruction[] = [];
  for (const op of root.children) {
    if (op.ns !== DAV || (op.local !== 'set' && op.local !== 'remove')) throw new BadXmlError(`unexpected element ${op.local} in propertyupdate`);
    const prop = op.children.length === 1 ? op.children[0]! : undefined;
    if (!prop || prop.ns !== DAV || prop.local !== 'prop') throw new BadXmlError(`DAV:${op.local} must contain exactly one DAV:prop`);
    const inherited = langOf(prop) ?? langOf(op) ?? langOf(root);
    for (const el of prop.children) out.push({ op: op.local, el, lang: langOf(el) ?? inherited });
  }
  if (out.length === 0) throw new BadXmlError('PROPPATCH names no property');
  return out;
}

function propTag(ns: string, local: string): string {
  return ns === DAV ? `<D:${local}/>` : ns ? `<X:${local} xmlns:X="${escapeXml(ns, true)}"/>` : `<${local} xmlns=""/>`;
}

export async function handleProppatch(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const list = instructions(await readXml(req.raw, xmlLimits(ctx.config)));
  const node = await ctx.cache.getnode(davPath(req), identityOf(req));
  const path = node.path;
  await checkWritable(ctx, req, path);

  const failed = new Map<number, ProtectedPropertyError>();
  list.forEach((ins, i) => {
    if (isProtected(ins.el.ns, ins.el.local)) failed.set(i, new ProtectedPropertyError(ins.el.local));
  });
  let mtime: number | undefined;
  if (failed.size === 0) {
    const next = new Map<string, DeadProperty>(await ctx.state.properties(path) ?? []);
    for (const { op, el, lang } of list) {
      const key = propKey(el.ns, el.local);
      if (op === 'remove') next.delete(key);
      else next.set(key, { ns: el.ns, local: el.local, xml: innerXml(el), ...(lang ? { lang } : {}) });
      // Windows sends the file time it wants as Win32LastModifiedTime: pass it on where the upstream can.
      if (op === 'set' && el.ns === MS && el.local === 'Win32LastModifiedTime' && node.kind === 'file') {
        const t = Date.parse(el.text.trim());
        if (!Number.isNaN(t)) mtime = t;
      }
    }
    await ctx.state.setProperties(path, next);
    await ctx.cache.announce([path]);
    if (mtime !== undefined) await ctx.cache.setMtime(path, mtime, identityOf(req)).catch((err) => req.log.warn({ err }, 'setting mtime failed'));
  }

  // One propstat per status; a failed instruction's error names its condition element.
  const byStatus = new Map<number, { tags: string[]; condition?: string }>();
  list.forEach((ins, i) => {
    const err = failed.get(i);
    const status = failed.size === 0 ? 200 : err?.status ?? 424;
    const group = byStatus.get(status) ?? { tags: [], condition: err?.condition };
    group.tags.push(propTag(ins.el.ns, ins.el.local));
    byStatus.set(status, group);
  });
  const text: Record<number, string> = { 200: 'OK', 403: 'Forbidden', 424: 'Failed Dependency' };
  let xml = `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:"><D:response><D:href>${encodeHref(path)}${node.kind === 'dir' && path !== '/' ? '/' : ''}</D:href>`;
  for (const [status, { tags, condition }] of byStatus) {
    xml += `<D:propstat><D:prop>${tags.join('')}</D:prop><D:status>HTTP/1.1 ${status} ${text[status]}</D:status>`;
    if (condition) xml += `<D:error><D:${condition}/></D:error>`;
    xml += '</D:propstat>';
  }
  xml += '</D:response></D:multistatus>\n';
  reply.code(207).type('application/xml; charset=utf-8').send(xml);
}
