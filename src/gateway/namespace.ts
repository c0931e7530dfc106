import type { FastifyReply, FastifyRequest } from 'fastify';
import { canonicalFromUrlPath, isWithin } from '../davpath.js';
import {
  BadDepthError, BadDestinationError, BadRequestError, ConflictError, ExistsError, ForbiddenError, NotADirectoryError, NotFoundError,
  PreconditionFailedError, UnsupportedMediaTypeError,
} from '../errors.js';
import { checkIfHeader, checkLocks, checkWritable, davPath, identityOf, parseDepth, newMemberPath, type GatewayContext } from './request.js';
import { checkAppleDouble } from './put.js';
import type { Identity, Node } from '../cachemgr/cachemgr.js';

// MKCOL, DELETE, COPY and MOVE (RFC 4918 §9.3, §9.6, §9.8, §9.9).

/** The node at `path` (in either Unicode normal form), or undefined. */
async function nodeAt(ctx: GatewayContext, path: string, identity: Identity): Promise<Node | undefined> {
  try {
    return await ctx.cache.getnode(path, identity);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

async function exists(ctx: GatewayContext, path: string, identity: Identity): Promise<boolean> {
  return (await nodeAt(ctx, path, identity)) !== undefined;
}

export async function handleMkcol(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  let path = davPath(req);
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  if (hasBody) {
    req.raw.resume();
    throw new UnsupportedMediaTypeError('MKCOL with a body is not supported');
  }
  if (path === '/' || (await exists(ctx, path, identityOf(req)))) throw new ExistsError();
  path = await newMemberPath(ctx, path, identityOf(req));
  checkAppleDouble(ctx, path);
  await checkWritable(ctx, req, path, { membership: true });
  try {
    await ctx.cache.mkdir(path, identityOf(req));
  } catch (err) {
    if (err instanceof NotADirectoryError) throw new ConflictError('parent is not a collection');
    throw err;
  }
  reply.code(201).send();
}

export async function handleDelete(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const path = davPath(req);
  if (path === '/') throw new ForbiddenError('the root cannot be deleted');
  const depth = parseDepth(req, 'infinity', ['0', '1', 'infinity']);
  const node = await ctx.cache.getnode(path, identityOf(req));
  // RFC 4918 §9.6.1: a collection is deleted as Depth: infinity only; for a file Depth means
  // nothing, and lftp sends Depth: 0 with every rm.
  if (node.kind === 'dir' && depth !== 'infinity') throw new BadDepthError('DELETE of a collection takes Depth: infinity only');
  await checkWritable(ctx, req, node.path, { tree: true, membership: true });
  await ctx.cache.remove(node.path, identityOf(req));
  await ctx.state.delete(node.path);
  reply.code(204).send();
}

/**
 * The Destination header as a canonical path. It may be an absolute URI with any host
 * (reverse proxies rewrite hosts) or an absolute path; it is decoded exactly once.
 */
export function destinationOf(req: FastifyRequest): string {
  const raw = req.headers.destination;
  if (typeof raw !== 'string' || raw.trim() === '') throw new BadDestinationError('Destination header is required');
  // Only the path counts: the host may differ behind a reverse proxy. Dot segments are kept
  // for canonicalFromUrlPath to refuse (new URL() would silently resolve them).
  const abs = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(\/[^?#]*)?/i.exec(raw);
  const pathname = abs ? (abs[1] ?? '/') : raw.startsWith('/') ? raw.split(/[?#]/)[0]! : '';
  if (!pathname) throw new BadDestinationError('Destination must be an absolute URI or path');
  return canonicalFromUrlPath(pathname);
}

function overwriteOf(req: FastifyRequest): boolean {
  const v = req.headers.overwrite;
  if (v === undefined) return true;
  const s = String(v).trim().toUpperCase();
  if (s === 'T') return true;
  if (s === 'F') return false;
  throw new BadRequestError('Overwrite must be T or F');
}

export async function handleCopyMove(ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const move = req.method === 'MOVE';
  let to = destinationOf(req);
  const overwrite = overwriteOf(req);
  const identity = identityOf(req);
  const source = await ctx.cache.getnode(davPath(req), identity);
  const from = source.path;
  const depth = source.kind === 'dir'
    ? parseDepth(req, 'infinity', move ? ['infinity'] : ['0', 'infinity'])
    : parseDepth(req, 'infinity', ['0', '1', 'infinity']);
  if (from === to) throw new ForbiddenError('source and destination are the same');
  if (from === '/' || isWithin(to, from)) throw new ForbiddenError('destination is inside the source');
  // Untagged If lists apply to the Request-URI (the source); the tokens count for both ends.
  const tokens = await checkIfHeader(ctx, req, from);
  if (move) await checkLocks(ctx, from, tokens, { tree: true, membership: true });
  await checkLocks(ctx, to, tokens, { tree: true, membership: true });
  checkAppleDouble(ctx, to);
  const target = await nodeAt(ctx, to, identity);
  // The source itself in another Unicode form: a MOVE respells it, a COPY would double it.
  if (target?.path === from && !move) throw new ForbiddenError('source and destination are the same');
  const existed = target !== undefined && target.path !== from;
  if (existed && !overwrite) throw new PreconditionFailedError('destination exists and Overwrite is F');
  // An existing destination in the other Unicode form is replaced under its own name, not doubled.
  to = existed ? target.path : await newMemberPath(ctx, to, identity);
  if (move) {
    await ctx.cache.move(from, to, overwrite, identity);
    await ctx.state.move(from, to);
  } else {
    await ctx.cache.copy(from, to, overwrite, depth === '0', identity);
    await ctx.state.copy(from, to, depth === '0');
  }
  reply.code(existed ? 204 : 201).send();
}
