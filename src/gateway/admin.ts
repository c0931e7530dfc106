import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { CacheManager } from '../cachemgr/cachemgr.js';
import type { Metrics } from '../metrics.js';
import { canonicalPath } from '../davpath.js';
import { statusOf } from '../errors.js';

// The admin listener: metrics, health, readiness and invalidation, on their own port and
// never in the WebDAV namespace.

export function buildAdminApp(cache: CacheManager, metrics: Metrics, logLevel: string): FastifyInstance {
  // Scrapes and health checks every few seconds: not worth a log line each.
  const app = Fastify({ logger: { level: logLevel }, logController: new LogController({ disableRequestLogging: true }) });
  app.get('/metrics', async (_req, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  app.get('/healthz', async () => 'ok\n');
  app.get('/readyz', async (_req, reply) => {
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
  app.post('/invalidate', async (req, reply) => {
    const q = req.query as { path?: string };
    let path: string;
    try {
      path = canonicalPath(q.path ?? '/');
    } catch (err) {
      reply.code(400);
      return { error: (err as Error).message };
    }
    return { invalidated: await cache.invalidate(path), path };
  });
  return app;
}
