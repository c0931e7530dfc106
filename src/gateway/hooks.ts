import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { AuthRequiredError, ForbiddenError, TooManyLoginsError } from '../errors.js';
import type { Login } from './auth.js';
import { basicUserName } from './auth-limit.js';
import { checkRequestLimits } from './limits.js';
import { accountRequest } from './accounting.js';
import { identityFor } from './request.js';

// The onRequest hooks of the WebDAV app, in the order they run: accounting and bounds, CORS,
// authentication. Each may answer the request itself, and then no route runs.

type SendError = (reply: FastifyReply, err: unknown) => void;

/** One log line and the request metrics when a request ends; the bounds of limits.ts before anything else. */
export function addAccountingHook(app: FastifyInstance, config: Config, metrics: Metrics, sendError: SendError): void {
  app.addHook('onRequest', (req, reply, done) => {
    req.davIdentity = identityFor(config, req.headers.authorization);
    // Also on hijacked replies (GET, PROPFIND stream on the raw response).
    reply.raw.setHeader('x-request-id', req.id);
    accountRequest(metrics, req.log, req.raw, reply.raw, () => ({ cache: req.davCache, user: req.davUser?.name }));
    try {
      checkRequestLimits(req.raw, config);
    } catch (err) {
      req.raw.resume();
      sendError(reply, err);
      return; // answered: no route runs
    }
    done();
  });
}

/** CORS for browser clients: configured origins, or any origin (without credentials) for "*". */
export function addCorsHook(app: FastifyInstance, corsOrigins: readonly string[]): void {
  const origins = new Set(corsOrigins);
  if (!origins.size) return;
  app.addHook('onRequest', (req, reply, done) => {
    const origin = req.headers.origin;
    if (origin && (origins.has(origin) || origins.has('*'))) {
      const exact = origins.has(origin);
      reply.header('access-control-allow-origin', exact ? origin : '*').header('vary', 'Origin')
        .header('access-control-expose-headers', 'DAV, ETag, Lock-Token, Content-Range, Content-Length');
      if (exact) reply.header('access-control-allow-credentials', 'true');
      // Reply headers are lost when a handler hijacks the response: copy them to the raw one.
      for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) reply.raw.setHeader(k, v);
    }
    done();
  });
}

/** Methods a page of another site may make a browser send here: they change nothing. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PROPFIND']);

/**
 * A browser logged in here (Basic credentials are sent along by the browser itself) must not
 * write on behalf of a page of another site: a change with an Origin that is neither this
 * gateway's own nor one of webdav.corsOrigins is refused (403) before anything else. WebDAV
 * clients that are not browsers send no Origin.
 */
export function addOriginHook(app: FastifyInstance, corsOrigins: readonly string[], sendError: SendError): void {
  const allowed = new Set(corsOrigins);
  app.addHook('onRequest', (req, reply, done) => {
    const origin = req.headers.origin;
    if (origin === undefined || SAFE_METHODS.has(req.method) || allowed.has(origin) || allowed.has('*') || sameOrigin(origin, req.headers)) {
      done();
      return;
    }
    req.raw.resume();
    sendError(reply, new ForbiddenError(`a change requested by a page of ${origin} is refused`));
  });
}

function sameOrigin(origin: string, headers: Record<string, string | string[] | undefined>): boolean {
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false; // "null" (a sandboxed frame, a file) or garbage
  }
  const forwarded = headers['x-forwarded-host'];
  return host === headers.host || (typeof forwarded === 'string' && host === forwarded.split(',')[0]!.trim());
}

/** HTTP Basic against auth.htpasswd, with failed logins rate-limited per address and per user. */
export function addAuthHook(app: FastifyInstance, metrics: Metrics, login: Login | undefined, sendError: SendError): void {
  if (!login) return;
  const { auth, failures } = login;
  app.addHook('onRequest', async (req, reply) => {
    // Windows gives up on a 401 to OPTIONS: answer it without credentials.
    if (req.method === 'OPTIONS') return;
    const header = req.headers.authorization;
    const name = basicUserName(header);
    const keys = name === undefined ? [`ip ${req.ip}`] : [`ip ${req.ip}`, `user ${name}`];
    const wait = header ? failures.blockedFor(keys) : 0;
    if (wait > 0) {
      metrics.authFailures.inc({ reason: 'rate_limited' });
      req.raw.resume();
      sendError(reply, new TooManyLoginsError(wait));
      return reply;
    }
    const user = await auth.check(header);
    if (!user) {
      // No credentials is how every client starts (it learns the realm): not a failure.
      if (header) {
        failures.failed(keys);
        metrics.authFailures.inc({ reason: 'bad_credentials' });
      }
      req.raw.resume();
      sendError(reply, new AuthRequiredError());
      return reply;
    }
    failures.succeeded(`user ${user.name}`);
    req.davUser = user;
  });
}
