import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { CacheManager } from '../cachemgr/cachemgr.js';
import type { Upstream } from '../upstream/types.js';
import { Metrics } from '../metrics.js';
import { ReadOnlyError } from '../errors.js';
import { DavState } from './davstate.js';
import { createDavDelegate } from './davserver.js';
import { handleGet } from './get.js';
import { handlePropfind } from './propfind.js';
import { handlePut } from './put.js';
import { handleCopyMove, handleDelete, handleMkcol } from './namespace.js';
import { HtpasswdAuth, type User } from './auth.js';
import { buildAdminApp } from './admin.js';
import { handleLock, handleUnlock } from './lock.js';
import { assertUnlocked, davPath, identityOf, sendError, type GatewayContext } from './request.js';
import { parseXml, readBody } from './xml.js';
import { checkPropertyUpdate } from './proppatch.js';

type Handler = (ctx: GatewayContext, req: FastifyRequest, reply: FastifyReply) => Promise<void>;

const DAV_METHODS = ['PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK'] as const;
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PROPFIND']);
const ALLOW = 'OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK';

declare module 'fastify' {
  interface FastifyRequest { davUser?: User }
}

export interface Gateway {
  readonly app: FastifyInstance;
  readonly admin: FastifyInstance;
  readonly cache: CacheManager;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

/** Build the WebDAV app and the admin app over an upstream; listening is the caller's job. */
export async function buildGateway(config: Config, upstream: Upstream, opts: { metrics?: Metrics } = {}): Promise<Gateway> {
  const metrics = opts.metrics ?? new Metrics();
  const auth = config.auth.htpasswd ? new HtpasswdAuth(config.auth.htpasswd, config.auth.readOnlyUsers) : undefined;
  const cache = await CacheManager.open(upstream, config.cache, metrics);
  const state = new DavState();
  const ctx: GatewayContext = { config, cache, state, metrics };
  const delegate = createDavDelegate(cache, state);

  const app = Fastify({
    logger: { level: config.logLevel },
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    routerOptions: { maxParamLength: 65_536 },
    requestTimeout: 0,
  });
  for (const m of DAV_METHODS) if (!app.supportedMethods.includes(m)) app.addHttpMethod(m, { hasBody: true });
  // Bodies are streamed by the handlers themselves (PUT) or read with a limit (XML).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  const known = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', ...DAV_METHODS]);
  app.addHook('onRequest', (req, reply, done) => {
    const start = process.hrtime.bigint();
    const method = known.has(req.method) ? req.method : 'OTHER';
    reply.raw.once('close', () => {
      metrics.requests.inc({ method, status: String(reply.raw.statusCode) });
      metrics.requestDuration.observe({ method }, Number(process.hrtime.bigint() - start) / 1e9);
    });
    done();
  });

  if (auth) {
    app.addHook('onRequest', async (req, reply) => {
      // Windows gives up on a 401 to OPTIONS: answer it without credentials.
      if (req.method === 'OPTIONS') return;
      const user = await auth.check(req.headers.authorization);
      if (!user) {
        req.raw.resume();
        return reply.code(401).header('www-authenticate', `Basic realm="${config.auth.realm}", charset="UTF-8"`).send('authentication required\n');
      }
      req.davUser = user;
    });
  }

  const options: Handler = async (_ctx, _req, reply) => {
    reply.code(200).headers({ 'dav': '1, 2', 'ms-author-via': 'DAV', 'allow': ALLOW, 'accept-ranges': 'bytes', 'content-length': 0 }).send();
  };
  const proppatch: Handler = async (_ctx, req, reply) => {
    const path = davPath(req);
    assertUnlocked(ctx, req, path);
    const body = await readBody(req.raw, config.webdav.maxXmlBodyBytes);
    checkPropertyUpdate(parseXml(body));
    await cache.getnode(path, identityOf(req)); // 404 before webdav-server sees it
    reply.hijack();
    await delegate(req.raw, reply.raw, body);
  };
  const handlers: Record<string, Handler> = {
    GET: handleGet, HEAD: handleGet, PUT: handlePut, PROPFIND: handlePropfind, OPTIONS: options,
    MKCOL: handleMkcol, DELETE: handleDelete, COPY: handleCopyMove, MOVE: handleCopyMove,
    LOCK: handleLock, UNLOCK: handleUnlock, PROPPATCH: proppatch,
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
    reply.code(405).header('allow', ALLOW).send('method not allowed\n');
  });
  app.setErrorHandler((err, _req, reply) => sendError(reply, err));

  const admin = buildAdminApp(cache, metrics, config.logLevel);
  return {
    app, admin, cache, metrics,
    async close() {
      await app.close();
      await admin.close();
      await cache.close();
    },
  };
}
