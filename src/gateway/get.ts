import type { FastifyReply, FastifyRequest } from 'fastify';
import rangeParser from 'range-parser';
import mime from 'mime-types';
import type { Node } from '../cachemgr/cachemgr.js';
import { DavgateError, PreconditionFailedError } from '../errors.js';
import { encodeHref } from '../davpath.js';
import { davPath, identityOf, type GatewayContext } from './request.js';
import { escapeXml } from './xml.js';
import { writeChunk } from './drain.js';

// GET and HEAD: the hot read path. Conditionals per RFC 9110 §13, a single byte range
// (§14); several ranges are answered with the whole body, which the RFC allows.

export function etagOf(node: Node): string {
  return `"${node.version}"`;
}

export function contentTypeOf(path: string): string {
  return mime.lookup(path) || 'application/octet-stream';
}

function etagMatches(header: string, etag: string, weak: boolean): boolean {
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => {
    let tag = t.trim();
    if (weak && tag.startsWith('W/')) tag = tag.slice(2);
    return tag === etag;
  });
}

function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

export class RangeNotSatisfiableError extends DavgateError {
  readonly size: number;
  constructor(size: number) {
    super('DAVGATE_BAD_RANGE', 'range not satisfiable');
    this.size = size;
  }
}

/** 'full', a [start, end] pair, or 'not-modified'. Throws for 412 and 416. */
function evaluate(req: FastifyRequest, node: Node): 'not-modified' | 'full' | [number, number] {
  const h = req.headers;
  const etag = etagOf(node);
  if (h['if-match'] && !etagMatches(h['if-match'], etag, false)) throw new PreconditionFailedError();
  if (!h['if-match'] && h['if-unmodified-since']) {
    const t = Date.parse(h['if-unmodified-since']);
    if (!Number.isNaN(t) && seconds(node.mtimeMs) > seconds(t)) throw new PreconditionFailedError();
  }
  if (h['if-none-match']) {
    if (etagMatches(h['if-none-match'], etag, true)) return 'not-modified';
  } else if (h['if-modified-since']) {
    const t = Date.parse(h['if-modified-since']);
    if (!Number.isNaN(t) && seconds(node.mtimeMs) <= seconds(t)) return 'not-modified';
  }
  const range = h.range;
  if (!range || node.kind !== 'file') return 'full';
  if (!/^\s*bytes\s*=/i.test(range)) return 'full'; // unknown range unit: ignored (RFC 9110 §14.2)
  const ifRange = typeof h['if-range'] === 'string' ? h['if-range'] : undefined;
  if (ifRange) {
    const matches = ifRange.trim().startsWith('"') || ifRange.trim().startsWith('W/')
      ? ifRange.trim() === etag
      : seconds(Date.parse(ifRange)) === seconds(node.mtimeMs);
    if (!matches) return 'full';
  }
  const parsed = rangeParser(node.size, range, { combine: true });
  if (parsed === -1 || parsed === -2) throw new RangeNotSatisfiableError(node.size);
  if (parsed.length !== 1) return 'full';
  return [parsed[0]!.start, parsed[0]!.end];
}

export async function handleGet(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = davPath(req);
  const node = await ctx.cache.getnode(path, identityOf(req));
  if (node.kind === 'dir') return sendListing(ctx, req, reply, node);
  const verdict = evaluate(req, node);
  const headers: Record<string, string | number> = {
    'etag': etagOf(node),
    'last-modified': httpDate(node.mtimeMs),
    'accept-ranges': 'bytes',
  };
  if (verdict === 'not-modified') {
    reply.code(304).headers(headers).send();
    return;
  }
  const [start, end] = verdict === 'full' ? [0, node.size - 1] : verdict;
  headers['content-type'] = contentTypeOf(path);
  headers['content-length'] = Math.max(0, end - start + 1);
  let status = 200;
  if (verdict !== 'full') {
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${node.size}`;
  }
  if (req.method === 'HEAD' || node.size === 0) {
    reply.code(status).headers(headers).send();
    return;
  }
  // Fetch the first block before committing to a status, so a failure is still an error reply.
  const blocks = ctx.cache.readRange(node, start, end);
  const first = await blocks.next();
  reply.hijack();
  const res = reply.raw;
  res.writeHead(status, headers);
  try {
    if (!first.done) await writeChunk(res, first.value);
    for await (const buf of blocks) await writeChunk(res, buf);
    res.end();
  } catch (err) {
    // Headers are out: the only honest signal left is a broken connection.
    req.log.warn({ err }, 'GET aborted mid-body');
    res.destroy();
  } finally {
    await blocks.return(undefined);
  }
}


/** A plain HTML index for browsers that GET a collection; streamed like PROPFIND. */
async function sendListing(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply, node: Node): Promise<void> {
  const base = node.path === '/' ? '' : node.path;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'etag': etagOf(node), 'last-modified': httpDate(node.mtimeMs) });
  if (req.method === 'HEAD') { res.end(); return; }
  try {
    res.write(`<!doctype html><meta charset="utf-8"><title>${escapeXml(node.path)}</title><h1>${escapeXml(node.path)}</h1><ul>\n`);
    for await (const child of ctx.cache.list(node.path, identityOf(req))) {
      const name = child.path.slice(base.length + 1) + (child.kind === 'dir' ? '/' : '');
      await writeChunk(res, `<li><a href="${escapeXml(encodeHref(base + '/' + name), true)}">${escapeXml(name)}</a></li>\n`);
    }
    res.end('</ul>\n');
  } catch (err) {
    req.log.warn({ err }, 'listing aborted');
    res.destroy();
  }
}
