import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Node } from '../cachemgr/cachemgr.js';
import { NotFoundError, PreconditionFailedError } from '../errors.js';
import { davPath, identityOf, urlHasTrailingSlash, type GatewayContext } from './request.js';
import { evaluateRead, type ReadVerdict } from './conditional.js';
import { textOf } from './node-text.js';
import { ResponseSink, clientGone } from './drain.js';
import { sendPage } from './web/page.js';
import { isAssetPath, sendAsset } from './web/assets.js';

// GET and HEAD: the hot read path (conditionals and ranges decided in conditional.ts).

export async function handleGet(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = davPath(req);
  if (isAssetPath(path)) return sendAsset(req, reply, path);
  try {
    // A fresh record needs no await: the hot read of a small file is answered in this turn.
    await sendNode(ctx, req, reply, ctx.cache.peekNode(path, identityOf(req)) ?? await ctx.cache.getnode(path, identityOf(req)));
  } catch (err) {
    // The object changed upstream within the TTL and the blocks needed are not cached:
    // the failed fetch made the node stale, so one more try serves the new version whole.
    if (!(err instanceof PreconditionFailedError) || reply.sent) throw err;
    await sendNode(ctx, req, reply, await ctx.cache.getnode(path, identityOf(req)));
  }
}

/** Status and headers of a read of `node` decided as `verdict`, and the bytes it sends. */
export interface ReadHead { status: number; headers: Record<string, string | number>; start: number; end: number }

/** Types a browser runs scripts in: served sandboxed, so an uploaded page cannot act as this site. */
const ACTIVE_CONTENT = /^(text\/html|application\/xhtml\+xml|image\/svg\+xml|text\/xml|application\/xml)\b/;

export function readHead(node: Node, verdict: ReadVerdict): ReadHead {
  const text = textOf(node);
  const headers: Record<string, string | number> = {
    'etag': text.etag,
    'last-modified': text.lastModified,
    'accept-ranges': 'bytes',
  };
  // The upstream is unreachable and this is what the cache last knew (RFC 9111 §5.5 warning).
  if (node.stale) Object.assign(headers, { 'x-davgate-stale': '1', 'warning': '110 - "Response is Stale"' });
  if (verdict === 'not-modified') return { status: 304, headers, start: 0, end: -1 };
  const [start, end] = verdict === 'full' ? [0, node.size - 1] : verdict;
  headers['content-type'] = text.contentType;
  if (ACTIVE_CONTENT.test(text.contentType)) headers['content-security-policy'] = 'sandbox';
  headers['content-length'] = Math.max(0, end - start + 1);
  if (verdict === 'full') return { status: 200, headers, start, end };
  headers['content-range'] = `bytes ${start}-${end}/${node.size}`;
  return { status: 206, headers, start, end };
}

async function sendNode(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply, node: Node): Promise<void> {
  if (node.kind === 'dir') return sendPage(ctx, req, reply, node);
  if (urlHasTrailingSlash(req)) throw new NotFoundError('collection');
  const { status, headers, start, end } = readHead(node, evaluateRead(req.headers, node));
  if (status === 304 || req.method === 'HEAD' || node.size === 0) {
    reply.code(status).headers(headers).send();
    return;
  }
  const res = reply.raw;
  const hot = ctx.cache.rangeInMemory(node, start, end);
  if (hot) {
    req.davCache = 'hit';
    reply.hijack();
    res.writeHead(status, headers);
    res.end(hot);
    return;
  }
  req.davCache = ctx.cache.residency(node, start, end);
  // The status is committed with the first chunk, so a failure to get it is still an error reply.
  const sink = new ResponseSink(res, () => { reply.hijack(); res.writeHead(status, headers); });
  try {
    await ctx.cache.readRangeInto(node, start, end, identityOf(req), sink);
    res.end();
  } catch (err) {
    if (!sink.started) throw err;
    // Headers are out: the only honest signal left is a broken connection. A client that went
    // away is no fault of ours: the request line says "client abort".
    if (clientGone(res)) req.log.debug({ err }, 'GET ended by the client');
    else req.log.warn({ err }, 'GET aborted mid-body');
    res.destroy();
  }
}
