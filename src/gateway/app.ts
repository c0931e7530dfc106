import { randomUUID } from 'node:crypto';
import type { Server as HttpsServer } from 'node:https';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { CacheManager, type Identity } from '../cachemgr/cachemgr.js';
import type { Upstream } from '../upstream/types.js';
import { Metrics } from '../metrics.js';
import { VERSION } from '../version.js';
import { AuthRequiredError, BadRequestError, BodyTooLargeError, DavgateError, MethodNotAllowedError, ReadOnlyError, TooManyLoginsError } from '../errors.js';
import { DavState } from './davstate.js';
import { handleGet } from './get.js';
import { handlePropfind } from './propfind.js';
import { handlePut } from './put.js';
import { handleCopyMove, handleDelete, handleMkcol } from './namespace.js';
import { HtpasswdAuth, type User } from './auth.js';
import { FailedLogins, basicUserName } from './auth-limit.js';
import { buildAdminApp } from './admin.js';
import { handleLock, handleUnlock } from './lock.js';
import { identityFor, type GatewayContext } from './request.js';
import { sendError as sendErrorWith } from './respond.js';
import { handleProppatch } from './proppatch.js';
import { checkRequestLimits } from './limits.js';
import { answerClientError } from './client-error.js';
import { limitConnectionsPerClient } from './connections.js';
import { readTls, reloadTls } from './tls.js';

type Handler = (ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const DAV_METHODS = ['PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK'] as const;
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PROPFIND']);
const CORS_HEADERS = 'Authorization, Content-Type, Depth, Destination, If, Lock-Token, Overwrite, Timeout, Range, If-Match, If-None-Match, X-Expected-Entity-Length, X-OC-Mtime';
const ALLOW = 'OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK';

declare module 'fastify' {
  interface FastifyRequest { davUser?: User; davIdentity?: Identity; davCache?: 'hit' | 'partial' | 'miss' }
}

export interface Gateway {
  readonly app: FastifyInstance;
  readonly admin: FastifyInstance;
  readonly cache: CacheManager;
  readonly metrics: Metrics;
  /** Re-read what can change without a restart: the TLS certificate and key. */
  reload(): Promise<{ tls: boolean }>;
  close(): Promise<void>;
}

/** Build the WebDAV app and the admin app over an upstream; listening is the caller's job. */
export async function buildGateway(config: Config, upstream: Upstream, opts: { metrics?: Metrics } = {}): Promise<Gateway> {
  const metrics = opts.metrics ?? new Metrics({ version: VERSION });
  const auth = config.auth.htpasswd ? new HtpasswdAuth(config.auth.htpasswd, config.auth.readOnlyUsers) : undefined;
  let log: FastifyInstance['log'] | undefined; // the app's, once it exists
  const cache = await CacheManager.open(upstream, config.cache, metrics, {
    onDiskBypass: (bypassed, err) => {
      if (bypassed) log?.warn({ err }, `the cache disk fails writes: blocks are served from the upstream without being kept, retried in ${config.cache.diskRetryAfter / 1000} s`);
      else log?.info('the cache disk takes blocks again');
    },
  });
  let state: DavState;
  try {
    state = await DavState.open(config.cache.nodeTable, config.cache.dir);
  } catch (err) {
    await cache.close();
    throw err;
  }
  const ctx: GatewayContext = { config, cache, state, metrics };
  const sendError = (reply: FastifyReply, err: unknown) => sendErrorWith(reply, err, { realm: config.auth.realm });
  metrics.cacheLimit.set(config.cache.maxBytes);
  metrics.observeCacheDir(config.cache.dir);
  metrics.observe({
    breakerState: () => (upstream as { breakerState?: number }).breakerState ?? 0,
    activeLocks: () => state.activeLocks(),
    nodes: () => cache.nodeCount,
    memoryTierBytes: () => cache.memoryTierBytes,
  });

  const app = Fastify({
    logger: { level: config.logLevel },
    // One line per request, written when it ends (the onRequest hook below), instead of two.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : randomUUID();
    },
    exposeHeadRoutes: false,
    clientErrorHandler: answerClientError,
    routerOptions: { maxParamLength: 65_536 },
    // Slowloris: headers must arrive within headersTimeout (checked every second, not node's
    // 30 s); a connection silent for idleTimeout is closed. No bound on a whole request: a large
    // upload or download that keeps moving takes as long as it takes.
    ...(config.tls
      ? { https: { ...readTls(config.tls), headersTimeout: config.webdav.headersTimeout, connectionsCheckingInterval: 1000 } }
      : { http: { headersTimeout: config.webdav.headersTimeout, connectionsCheckingInterval: 1000 } }),
    requestTimeout: 0,
    connectionTimeout: config.webdav.idleTimeout,
  });
  limitConnectionsPerClient(app.server, config.webdav.maxConnectionsPerClient, metrics);
  log = app.log;
  for (const m of DAV_METHODS) if (!app.supportedMethods.includes(m)) app.addHttpMethod(m, { hasBody: true });
  // Bodies are streamed by the handlers themselves (PUT) or read with a limit (XML).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  const known = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', ...DAV_METHODS]);
  app.addHook('onRequest', (req, reply, done) => {
    req.davIdentity = identityFor(config, req.headers.authorization);
    const start = process.hrtime.bigint();
    const method = known.has(req.method) ? req.method : 'OTHER';
    const socket = req.raw.socket;
    const written = socket.bytesWritten;
    metrics.inFlight.inc();
    // Also on hijacked replies (GET, PROPFIND stream on the raw response).
    reply.raw.setHeader('x-request-id', req.id);
    reply.raw.once('close', () => {
      metrics.inFlight.dec();
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const status = reply.raw.statusCode;
      const aborted = !reply.raw.writableFinished;
      metrics.request(method, status, seconds);
      if (aborted) metrics.clientAborts.inc({ method });
      if (status === 500) metrics.internalErrors.inc();
      // A client going away is its own choice, not a gateway or upstream failure: info.
      req.log.info({
        method: req.method, url: req.raw.url?.slice(0, 2048), status, bytes: socket.bytesWritten - written,
        durationMs: Math.round(seconds * 1e4) / 10, cache: req.davCache, user: req.davUser?.name,
      }, aborted ? 'client abort' : 'request');
    });
    try {
      checkRequestLimits(req, config);
    } catch (err) {
      req.raw.resume();
      sendError(reply, err);
      return; // answered: no route runs
    }
    done();
  });

  // CORS for browser clients: configured origins, or any origin (without credentials) for "*".
  const origins = new Set(config.webdav.corsOrigins);
  if (origins.size) {
    app.addHook('onRequest', (req, reply, done) => {
      const origin = req.headers.origin;
      if (origin && (origins.has(origin) || origins.has('*'))) {
        const exact = origins.has(origin);
        reply.header('access-control-allow-origin', exact ? origin : '*').header('vary', 'Origin')
          .header('access-control-expose-headers', 'DAV, ETag, Lock-Token, Content-Range, Content-Length');
        if (exact) reply.header('access-control-allow-credentials', 'true');
        // Reply headers are lost when a handler hijacks the response: copy them to the raw one.
        for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) reply.raw.setHeader(k, v as string);
      }
      done();
    });
  }

  if (auth) {
    const failures = new FailedLogins(config.auth.maxFailures, config.auth.failureWindow);
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

  const options: Handler = async (_ctx, req, reply) => {
    reply.code(200).headers({ 'dav': '1, 2', 'ms-author-via': 'DAV', 'allow': ALLOW, 'accept-ranges': 'bytes', 'content-length': 0 });
    const preflight = req.headers['access-control-request-method'];
    if (preflight && reply.getHeader('access-control-allow-origin')) {
      reply.headers({
        'access-control-allow-methods': ALLOW,
        'access-control-allow-headers': req.headers['access-control-request-headers'] ?? CORS_HEADERS,
        'access-control-max-age': 600,
      });
    }
    reply.send();
  };
  const handlers: Record<string, Handler> = {
    GET: handleGet, HEAD: handleGet, PUT: handlePut, PROPFIND: handlePropfind, OPTIONS: options,
    MKCOL: handleMkcol, DELETE: handleDelete, COPY: handleCopyMove, MOVE: handleCopyMove,
    LOCK: handleLock, UNLOCK: handleUnlock, PROPPATCH: handleProppatch,
  };

  app.route({
    method: [...known],
    url: '*',
    handler: async (req, reply) => {
      try {
        if (req.davUser?.readOnly && !READ_METHODS.has(req.method)) throw new ReadOnlyError();
        await handlers[req.method]!(ctx, req, reply);
      } catch (err) {
        sendError(reply, err);
      }
    },
  });
  app.setNotFoundHandler((req, reply) => {
    req.raw.resume();
    sendError(reply, new MethodNotAllowedError(ALLOW));
  });
  // fastify refuses some requests before they reach a route (a body method without
  // Content-Type, a body over its limit): what a client sent wrong is a 4xx, never a 500.
  app.setErrorHandler((err, req, reply) => {
    const status = (err as { statusCode?: number }).statusCode;
    if (!known.has(req.method)) {
      req.raw.resume();
      sendError(reply, new MethodNotAllowedError(ALLOW));
    } else if (status !== undefined && status >= 400 && status < 500 && !(err instanceof DavgateError)) {
      const message = (err as Error).message;
      sendError(reply, status === 413 ? new BodyTooLargeError(message) : new BadRequestError(message));
    } else {
      sendError(reply, err);
    }
  });

  const tls = config.tls;
  const reload = async (): Promise<{ tls: boolean }> => {
    if (tls) reloadTls(app.server as unknown as HttpsServer, tls);
    app.log.info({ tls: Boolean(tls) }, 'reloaded');
    return { tls: Boolean(tls) };
  };
  const admin = buildAdminApp(cache, metrics, { logLevel: config.logLevel, token: config.admin.token, openMetrics: config.admin.openMetrics, reload });
  return {
    app, admin, cache, metrics, reload,
    async close() {
      await app.close();
      await admin.close();
      await state.close();
      await cache.close();
    },
  };
}
