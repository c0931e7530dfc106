import { createHash, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyInstance, type FastifyReply } from 'fastify';
import type { CacheManager } from '../cachemgr/cachemgr.js';
import { blockStats, cacheUsage, warm, type CacheStats, type CacheUsage } from '../cachemgr/maintenance.js';
import { verifyBlocks } from '../cachemgr/verify.js';
import type { Metrics } from '../metrics.js';
import { canonicalPath } from '../davpath.js';
import { AdminTokenRequiredError, BadRequestError, DavgateError, statusOf } from '../errors.js';
import { NOTIFY_PATH, addNotifyRoute, type NotifyRoute } from './notify.js';

// The admin listener: metrics, health, readiness, invalidation and cache maintenance
// (`davgate cache ...` talks to it while a gateway runs), on their own port and never in
// the WebDAV namespace.

/** Hit ratios since start, from the metrics (null before the first lookup). */
async function ratios(metrics: Metrics): Promise<Pick<CacheStats, 'blockHitRatio' | 'byteHitRatio'>> {
  const value = async (c: { get(): Promise<{ values: Array<{ labels: Record<string, unknown>; value: number }> }> }, label: string, v: string) =>
    (await c.get()).values.filter((x) => x.labels[label] === v).reduce((n, x) => n + x.value, 0);
  const ratio = (a: number, b: number) => (a + b > 0 ? a / (a + b) : null);
  return {
    blockHitRatio: ratio(await value(metrics.blockRequests, 'result', 'hit'), await value(metrics.blockRequests, 'result', 'miss')),
    byteHitRatio: ratio(await value(metrics.bytesServed, 'source', 'cache'), await value(metrics.bytesServed, 'source', 'upstream')),
  };
}

function pathParam(q: unknown, fallback?: string): string {
  const p = (q as { path?: string }).path ?? fallback;
  if (p === undefined) throw new BadRequestError('path is required');
  return canonicalPath(p);
}

/** Long work answers one JSON line per progress step, then one with the result. */
function ndjson(res: ServerResponse): (line: object) => void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  return (line) => { if (!res.destroyed) res.write(JSON.stringify(line) + '\n'); };
}

/** At most one line per this many ms, so a fast warm does not flood the client. */
function throttled(ms: number, fn: (a: number, b: number) => void): (a: number, b: number) => void {
  let last = 0;
  return (a, b) => {
    const now = Date.now();
    if (now - last >= ms || a === b) { last = now; fn(a, b); }
  };
}

/** Constant-time comparison of a presented bearer token with the configured one. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!m) return false;
  const digest = (v: string) => createHash('sha256').update(v).digest();
  return timingSafeEqual(digest(m[1]!), digest(token));
}

export interface AdminOptions {
  logLevel: string;
  /** Required on every route but health (and /metrics when `openMetrics`). */
  token?: string;
  openMetrics?: boolean;
  /** POST /reload: re-read the TLS certificate and key. */
  reload?: () => Promise<unknown>;
  /** POST /notify/s3, when a notification secret is configured (else 404). */
  notify?: NotifyRoute;
  /** Why a dependency besides the upstream (the shared Redis) keeps the gateway from being ready. */
  notReady?: () => string | undefined;
}

/** The bearer token on every route but health (and /metrics when it is open). */
function addTokenHook(app: FastifyInstance, token: string, openMetrics: boolean, notify: boolean): void {
  // A store cannot send the bearer token: notifications carry a secret of their own.
  const open = new Set(['/healthz', '/readyz', ...(openMetrics ? ['/metrics'] : []), ...(notify ? [NOTIFY_PATH] : [])]);
  app.addHook('onRequest', async (req) => {
    if (open.has(req.url.split('?')[0]!) || tokenMatches(req.headers.authorization, token)) return;
    req.raw.resume();
    throw new AdminTokenRequiredError();
  });
}

/** Errors are JSON here: `davgate cache ...` shows their message. */
function addErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err, _req, reply) => {
    reply.code(statusOf(err));
    if (err instanceof DavgateError) reply.headers(err.headers());
    reply.send({ error: (err as Error).message });
  });
}

function addHealthRoutes(app: FastifyInstance, cache: CacheManager, metrics: Metrics, notReady: AdminOptions['notReady']): void {
  app.get('/metrics', async (_req, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/healthz', async () => 'ok\n');
  app.get('/readyz', async (_req, reply) => {
    const reason = notReady?.();
    if (reason) {
      reply.code(503);
      return `${reason}\n`;
    }
    // The breaker's view first: a down upstream is not ready even before the next probe.
    if ((cache.upstream as { healthy?: boolean }).healthy === false) {
      reply.code(503);
      return 'upstream down\n';
    }
    try {
      // A listing really asks the store (an S3 root stat is answered locally).
      for await (const entry of cache.upstream.list('/')) { void entry; break; }
      return 'ready\n';
    } catch (err) {
      reply.code(503);
      return `upstream not ready (${statusOf(err)})\n`;
    }
  });
}

function addControlRoutes(app: FastifyInstance, cache: CacheManager, reload: AdminOptions['reload']): void {
  app.post('/invalidate', async (req, reply) => {
    let path: string;
    try {
      path = pathParam(req.query, '/');
    } catch (err) {
      reply.code(400);
      return { error: (err as Error).message };
    }
    return { invalidated: await cache.invalidate(path), path };
  });
  app.post('/reload', async () => {
    if (!reload) throw new BadRequestError('nothing to reload');
    return reload();
  });
}

/** Long work (verify, warm) streams its progress as NDJSON; its failure is the last line. */
async function streamWork(reply: FastifyReply, work: (send: (line: object) => void) => Promise<object>): Promise<void> {
  reply.hijack();
  const send = ndjson(reply.raw);
  try {
    send(await work(send));
  } catch (err) {
    send({ error: (err as Error).message });
  }
  reply.raw.end();
}

function addCacheRoutes(app: FastifyInstance, cache: CacheManager, metrics: Metrics): void {
  app.get('/cache/stats', async (req): Promise<CacheStats | CacheUsage> => {
    // With a path: what is cached of that file or tree; without: the whole cache.
    if ((req.query as { path?: string }).path !== undefined) return cacheUsage(cache, pathParam(req.query));
    return { ...blockStats(cache.blockStore), running: true, nodes: cache.nodeCount, ...await ratios(metrics) };
  });
  app.get('/cache/pins', async () => cache.pins.status());
  // Pinning reads the files in before it answers (as warm does), so the answer's figures are true.
  app.post('/cache/pin', async (req) => {
    const path = pathParam(req.query);
    await cache.getnode(path); // a missing path is a 404
    await cache.pins.add(path);
    return cache.pins.status();
  });
  app.post('/cache/unpin', async (req) => {
    await cache.pins.remove(pathParam(req.query));
    return cache.pins.status();
  });
  app.post('/cache/purge', async (req) => {
    const q = req.query as { path?: string };
    if (q.path === undefined) return { purgedBlocks: await cache.blockStore.dropAll(), invalidated: await cache.invalidate('/') };
    const path = pathParam(q);
    return { path, purgedNodes: await cache.purge(path) };
  });
  app.post('/cache/verify', async (req, reply) => {
    const repair = ['1', 'true'].includes(String((req.query as { repair?: string }).repair ?? ''));
    await streamWork(reply, async (send) => ({
      report: await verifyBlocks(cache.blockStore, { repair, onProgress: throttled(200, (done, total) => send({ done, total })) }),
    }));
  });
  app.post('/cache/warm', async (req, reply) => {
    const q = req.query as { concurrency?: string };
    const path = pathParam(req.query);
    const concurrency = Math.min(64, Math.max(1, Number(q.concurrency) || 4));
    await cache.getnode(path); // a missing path is a 404, before the stream starts
    await streamWork(reply, async (send) => ({
      result: await warm(cache, path, {
        concurrency,
        onStart: (files, total) => send({ files, total }),
        onProgress: throttled(200, (done, total) => send({ done, total })),
      }),
    }));
  });
}

export function buildAdminApp(cache: CacheManager, metrics: Metrics, opts: AdminOptions): FastifyInstance {
  // Scrapes and health checks every few seconds: not worth a log line each.
  const app = Fastify({ logger: { level: opts.logLevel }, logController: new LogController({ disableRequestLogging: true }) });
  if (opts.token) addTokenHook(app, opts.token, opts.openMetrics ?? false, opts.notify !== undefined);
  addErrorHandler(app);
  addHealthRoutes(app, cache, metrics, opts.notReady);
  addControlRoutes(app, cache, opts.reload);
  addCacheRoutes(app, cache, metrics);
  if (opts.notify) addNotifyRoute(app, opts.notify, metrics);
  return app;
}
