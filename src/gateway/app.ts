import { createServer as createHttpServer, type IncomingMessage, type ServerOptions as HttpServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import type { Config } from '../config.js';
import { CacheManager, type Identity } from '../cachemgr/cachemgr.js';
import type { Upstream } from '../upstream/types.js';
import { Metrics } from '../metrics.js';
import { VERSION } from '../version.js';
import { BadRequestError, BodyTooLargeError, DavgateError, MethodNotAllowedError } from '../errors.js';
import type { DavState } from './davstate.js';
import { LocalDavState } from './localstate.js';
import type { InvalidationBus } from '../cachemgr/bus.js';
import { loginFor, type User } from './auth.js';
import { buildAdminApp } from './admin.js';
import { requestIdOf, type GatewayContext } from './request.js';
import { hotReadHandler, type FrontHandler } from './hot-read.js';
import { sendError as sendErrorWith } from './respond.js';
import { answerClientError } from './client-error.js';
import { limitConnectionsPerClient } from './connections.js';
import { readTls, reloadTls } from './tls.js';
import { ALLOW, METHOD_NAMES, METHODS, checkAccess, isMethod } from './methods.js';
import { addAccountingHook, addAuthHook, addCorsHook, addOriginHook } from './hooks.js';
import { NotificationReceiver, type NotifyRoute, type StoreChange } from './notify.js';
import { watchTree, type TreeWatcher } from '../upstream/fs-watch.js';

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
  /** This instance's cache forgets these paths (their records, subtrees and parents' listings). */
  invalidateLocally: StoreChange;
  close(): Promise<void>;
}

type SendError = (reply: FastifyReply, err: unknown) => void;

/** What several gateways of one namespace share (src/cluster/); absent, a gateway is on its own. */
export interface SharedState {
  /** Locks and dead properties. */
  readonly state: DavState;
  /** Changes announced to, and by, the other gateways. */
  readonly bus: InvalidationBus;
  /** Why the shared state cannot be used now (for /readyz), or undefined. */
  notReady(): string | undefined;
}

/** The cache and the protocol state; the cache is closed again when the state cannot be opened. */
async function openStores(config: Config, upstream: Upstream, metrics: Metrics, log: () => FastifyInstance['log'] | undefined, shared?: SharedState): Promise<{ cache: CacheManager; state: DavState }> {
  const cache = await CacheManager.open(upstream, config.cache, metrics, {
    onDiskBypass: (bypassed, err) => {
      if (bypassed) log()?.warn({ err }, `the cache disk fails writes: blocks are served from the upstream without being kept, retried in ${config.cache.diskRetryAfter / 1000} s`);
      else log()?.info('the cache disk takes blocks again');
    },
  }, shared?.bus);
  try {
    return { cache, state: shared?.state ?? await LocalDavState.open(config.cache.nodeTable, config.cache.dir) };
  } catch (err) {
    await cache.close();
    throw err;
  }
}

function observeGauges(ctx: GatewayContext, upstream: Upstream): void {
  const { config, cache, state, metrics } = ctx;
  metrics.cacheLimit.set(config.cache.maxBytes);
  metrics.observeCacheDir(config.cache.dir);
  metrics.observe({
    breakerState: () => (upstream as { breakerState?: number }).breakerState ?? 0,
    activeLocks: () => state.activeLocks().catch(() => undefined),
    nodes: () => cache.nodeCount,
    memoryTierBytes: () => cache.memoryTierBytes,
    pinnedBytes: () => cache.blockStore.pinned.bytes,
    pinnedLimitBytes: () => cache.pins.limitBytes,
  });
}

/** The fastify instance of the WebDAV listener, before any hook or route. */
function createWebdavApp(config: Config, metrics: Metrics, front: { handler?: FrontHandler }): FastifyInstance {
  const w = config.webdav;
  const app = Fastify({
    serverFactory: (handler, opts) => createServer((req, res) => {
      if (!front.handler?.(req, res)) handler(req, res);
    }, opts),
    logger: { level: config.logLevel },
    // One line per request, written when it ends (hooks.ts), instead of two.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: (req) => requestIdOf(req.headers),
    exposeHeadRoutes: false,
    clientErrorHandler: answerClientError,
    routerOptions: { maxParamLength: 65_536 },
    // Slowloris: headers must arrive within headersTimeout (checked every second, not node's
    // 30 s); a connection silent for idleTimeout is closed. No bound on a whole request: a large
    // upload or download that keeps moving takes as long as it takes.
    ...(config.tls
      ? { https: { ...readTls(config.tls), headersTimeout: w.headersTimeout, connectionsCheckingInterval: 1000 } }
      : { http: { headersTimeout: w.headersTimeout, connectionsCheckingInterval: 1000 } }),
    requestTimeout: 0,
    connectionTimeout: w.idleTimeout,
  });
  limitConnectionsPerClient(app.server, w.maxConnectionsPerClient, metrics);
  // WebDAV lets any of its methods carry a body: each must reach its handler, which reads it,
  // streams it or refuses it, rather than being dropped or refused by fastify.
  for (const m of METHOD_NAMES) if (!app.supportedMethods.includes(m)) app.addHttpMethod(m, { hasBody: true });
  // Bodies are streamed by the handlers themselves (PUT) or read with a limit (XML).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
  return app;
}

/**
 * The listener fastify would create from these options (http or https, the same timeouts),
 * with `listener` in front of its handler.
 */
function createServer(listener: (req: IncomingMessage, res: ServerResponse) => void, opts: FastifyServerOptions & { http?: HttpServerOptions; https?: HttpsServerOptions | null }) {
  const server = opts.https ? createHttpsServer(opts.https, listener) : createHttpServer(opts.http ?? {}, listener);
  server.keepAliveTimeout = opts.keepAliveTimeout!;
  server.requestTimeout = opts.requestTimeout!;
  server.setTimeout(opts.connectionTimeout);
  return server;
}

/** Every method of the table on every URL; anything else is 405 with the table's Allow. */
function addRoutes(app: FastifyInstance, ctx: GatewayContext, sendError: SendError): void {
  app.route({
    method: METHOD_NAMES,
    url: '*',
    handler: async (req, reply) => {
      try {
        const method = req.method as keyof typeof METHODS;
        checkAccess(method, req.davUser?.readOnly ?? false);
        await METHODS[method].handler(ctx, req, reply);
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
    if (!isMethod(req.method)) {
      req.raw.resume();
      sendError(reply, new MethodNotAllowedError(ALLOW));
    } else if (status !== undefined && status >= 400 && status < 500 && !(err instanceof DavgateError)) {
      const message = (err as Error).message;
      sendError(reply, status === 413 ? new BodyTooLargeError(message) : new BadRequestError(message));
    } else {
      sendError(reply, err);
    }
  });
}

/** POST /notify/s3 when a secret is configured for an S3 upstream. */
function notifyRoute(config: Config, onStoreChange: StoreChange): NotifyRoute | undefined {
  const { upstream: u, notify: n } = config;
  if (!n.secret || u.type !== 's3') return undefined;
  const receiver = new NotificationReceiver({ secret: n.secret, bucket: u.bucket, prefix: u.prefix, dedupeEntries: n.dedupeEntries });
  return { receiver, maxBodyBytes: n.maxBodyBytes, onStoreChange };
}

/** The fs upstream's tree watched for changes made behind the gateway's back (upstream.watch). */
function watchUpstream(config: Config, onStoreChange: StoreChange, log: FastifyInstance['log']): TreeWatcher | undefined {
  if (config.upstream.type !== 'fs' || !config.upstream.watch) return undefined;
  return watchTree(config.upstream.root, onStoreChange, {
    onError: (err) => log.warn({ err }, 'the upstream directory is no longer watched: changes made behind the gateway show after cache.ttl'),
  });
}

export interface GatewayOptions {
  metrics?: Metrics;
  /** Locks, properties and the invalidation bus shared with other instances (Redis). */
  shared?: SharedState;
  /**
   * What a change of the store announced by a notification or the fs watcher does; `local` is
   * this instance's invalidation (the default does just that). Called as the change arrives:
   * it must not block.
   */
  onStoreChange?: (paths: string[], local: StoreChange) => void;
}

/** Build the WebDAV app and the admin app over an upstream; listening is the caller's job. */
export async function buildGateway(config: Config, upstream: Upstream, opts: GatewayOptions = {}): Promise<Gateway> {
  const metrics = opts.metrics ?? new Metrics({ version: VERSION });
  // Before the stores open: an unreadable htpasswd file leaves nothing to close.
  const login = loginFor(config);
  let app: FastifyInstance | undefined; // its logger, once it exists
  const { cache, state } = await openStores(config, upstream, metrics, () => app?.log, opts.shared);
  const ctx: GatewayContext = { config, cache, state, metrics };
  observeGauges(ctx, upstream);
  const sendError: SendError = (reply, err) => sendErrorWith(reply, err, { realm: config.auth.realm });
  const front: { handler?: FrontHandler } = {};
  const webdav = createWebdavApp(config, metrics, front);
  app = webdav;
  addAccountingHook(webdav, config, metrics, sendError);
  addCorsHook(webdav, config.webdav.corsOrigins);
  addOriginHook(webdav, config.webdav.corsOrigins, sendError);
  addAuthHook(webdav, metrics, login, sendError);
  addRoutes(webdav, ctx, sendError);
  front.handler = hotReadHandler(ctx, webdav.log, login);

  const tls = config.tls;
  const reload = async (): Promise<{ tls: boolean }> => {
    if (tls) reloadTls(webdav.server as unknown as HttpsServer, tls);
    webdav.log.info({ tls: Boolean(tls) }, 'reloaded');
    return { tls: Boolean(tls) };
  };
  const invalidateLocally: StoreChange = (paths) => {
    for (const p of paths) cache.invalidate(p).catch((err: unknown) => webdav.log.warn({ err, path: p }, 'invalidation failed'));
  };
  const onStoreChange = opts.onStoreChange;
  const storeChanged: StoreChange = onStoreChange ? (paths) => onStoreChange(paths, invalidateLocally) : invalidateLocally;
  const admin = buildAdminApp(cache, metrics, {
    logLevel: config.logLevel, token: config.admin.token, openMetrics: config.admin.openMetrics, reload, notify: notifyRoute(config, storeChanged),
    notReady: opts.shared?.notReady.bind(opts.shared),
  });
  const watcher = watchUpstream(config, storeChanged, webdav.log);
  // Pinned files are read into the cache now, in the background; a failure is logged, not fatal.
  cache.pins.onError = (err, path) => webdav.log.warn({ err, path }, 'reading a pinned file into the cache failed');
  void cache.pins.warm();
  return {
    app: webdav, admin, cache, metrics, reload, invalidateLocally,
    async close() {
      watcher?.close();
      await webdav.close();
      await admin.close();
      await state.close();
      await cache.close();
    },
  };
}
