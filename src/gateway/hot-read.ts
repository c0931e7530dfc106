import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { accountRequest, infoEnabled } from './accounting.js';
import type { Login, User } from './auth.js';
import { evaluateRead } from './conditional.js';
import { readHead } from './get.js';
import { checkRequestLimits } from './limits.js';
import { identityFor, rawPathOf, requestIdOf, type GatewayContext } from './request.js';
import { canonicalFromUrlPath } from '../davpath.js';

// A GET or HEAD of a file whose record is fresh and whose bytes lie in the memory tier is
// answered here, on the raw request, before fastify routes it. For a 4 KiB file, fastify's
// request and reply objects, logger child and hook chain cost more than all the rest: on 2
// cores the same hit went from ~18k to ~27k req/s. With Basic auth, only credentials verified
// within the last minute (auth.ts) of a user and address not rate-limited are answered here.
// Everything else falls through to the routes, which answer it in full: a login to check, a
// CORS request, a request over the bounds, a path that does not parse, a directory, a
// conditional that ends in 304, 412 or 416, a record to revalidate, bytes not in memory.

/** True when it answered the request; false leaves it untouched for fastify. */
export type FrontHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export function hotReadHandler(ctx: GatewayContext, log: FastifyBaseLogger, login?: Login): FrontHandler | undefined {
  const { config, cache, metrics } = ctx;
  if (config.auth.htpasswd && !login) return undefined;
  const cors = config.webdav.corsOrigins.length > 0;
  const anonymous = { hit: () => ({ cache: 'hit' as const }), none: () => ({}) };
  return (req, res) => {
    const method = req.method;
    const h = req.headers;
    if ((method !== 'GET' && method !== 'HEAD') || (cors && h.origin !== undefined)) return false;
    if (h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')) return false;
    const user = login ? knownUser(login, h.authorization, req.socket.remoteAddress) : undefined;
    if (login && !user) return false;
    let path: string;
    let verdict;
    try {
      checkRequestLimits(req, config);
      const raw = rawPathOf(req.url);
      if (raw.endsWith('/')) return false;
      path = canonicalFromUrlPath(raw); // as davPath does
    } catch {
      return false;
    }
    const node = cache.peekNode(path, identityFor(config, h.authorization));
    if (!node || node.kind !== 'file') return false;
    try {
      verdict = evaluateRead(h, node);
    } catch {
      return false;
    }
    if (verdict === 'not-modified') return false;
    const head = readHead(node, verdict);
    const sendsBytes = method === 'GET' && node.size > 0;
    const body = sendsBytes ? cache.rangeInMemory(node, head.start, head.end) : undefined;
    if (sendsBytes && !body) return false;
    const id = requestIdOf(h);
    // Without a user the details are the same for every request: no closure made per request.
    const details = user ? () => ({ cache: body ? 'hit' as const : undefined, user: user.name }) : body ? anonymous.hit : anonymous.none;
    accountRequest(metrics, infoEnabled(log) ? log.child({ reqId: id }) : log, req, res, details);
    head.headers['x-request-id'] = id;
    res.writeHead(head.status, head.headers);
    res.end(body);
    return true;
  };
}

/** The user of credentials verified recently, unless the user or the address is rate-limited now. */
function knownUser(login: Login, header: string | undefined, address: string | undefined): User | undefined {
  const user = login.auth.verified(header);
  if (!user || login.failures.blockedFor([`ip ${address ?? ''}`, `user ${user.name}`]) > 0) return undefined;
  login.failures.succeeded(`user ${user.name}`); // as the hook does on a right password
  return user;
}
