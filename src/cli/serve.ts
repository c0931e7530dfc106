import { mkdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostOf, portOf, type Config } from '../config.js';
import { openUpstream } from '../upstream/index.js';
import { Metrics } from '../metrics.js';
import { buildGateway } from '../gateway/app.js';
import { VERSION } from '../version.js';
import { configFrom } from './options.js';
import { ADMIN_FILE, reachableUrl } from './cache.js';

function describeUpstream(config: Config): string {
  const u = config.upstream;
  if (u.type === 'fs') return u.root;
  if (u.type === 's3') return `s3://${u.bucket}/${u.prefix} at ${u.endpoint ?? 'AWS'}`;
  const url = new URL(u.url);
  url.username = url.password = ''; // never print credentials written into the URL
  return url.href;
}

export async function serve(o: Record<string, unknown>): Promise<void> {
  const config = configFrom(o);
  if (config.upstream.type === 'fs' && !o.upstream && !o.config && !process.env.DAVGATE_UPSTREAM_ROOT) await mkdir(config.upstream.root, { recursive: true });
  const metrics = new Metrics({ version: VERSION });
  let gw: Awaited<ReturnType<typeof buildGateway>> | undefined;
  const upstream = await openUpstream(config, {
    onRetry: (operation) => metrics.upstreamRetries.inc({ operation }),
    onHealth: (up) => { metrics.upstreamUp.set(up ? 1 : 0); if (!up) metrics.breakerOpens.inc(); },
    onSweepError: (err) => {
      if (gw) gw.app.log.warn({ err }, 'could not abort the uploads a crash left open');
      else console.error(`davgate: could not abort the uploads a crash left open: ${(err as Error).message}`);
    },
  });
  // Loaded only with redis.url: a gateway on its own has no use for the Redis client.
  const cluster = config.redis ? (await import('../cluster/index.js')).openCluster(config.redis, metrics, () => gw?.app.log) : undefined;
  gw = await buildGateway(config, upstream, { metrics, shared: cluster });
  // One real request before the first client's: the S3 SDK loads its credential chain and
  // connections open on first use (~0.3 s), which would otherwise land on the first reader.
  // A failure here is only logged: the gateway starts anyway and /readyz tells.
  try {
    for await (const entry of upstream.list('/')) { void entry; break; }
  } catch (err) {
    gw.app.log.warn({ err }, 'upstream not reachable at start-up');
  }
  const adminFile = join(config.cache.dir, ADMIN_FILE);
  const stop = async (signal: string) => {
    gw.app.log.info(`${signal}: shutting down`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await unlink(adminFile).catch(() => {});
    await gw.close().catch(() => {});
    await cluster?.close().catch(() => {});
    process.exit(0);
  };
  // SIGHUP: a renewed certificate (certbot, cert-manager) is used without dropping a connection.
  process.on('SIGHUP', () => void gw.reload().catch((err: unknown) => gw.app.log.error({ err }, 'reload failed: the previous certificate stays in use')));
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  // Last line of defence: one bad request must never take the gateway down.
  process.on('uncaughtException', (err) => gw.app.log.error({ err }, 'uncaught exception (request dropped, gateway kept running)'));
  process.on('unhandledRejection', (err) => gw.app.log.error({ err }, 'unhandled rejection'));
  let url: string, adminUrl: string;
  try {
    url = await gw.app.listen({ host: hostOf(config.listen), port: portOf(config.listen) });
    adminUrl = await gw.admin.listen({ host: hostOf(config.admin.listen), port: portOf(config.admin.listen) });
  } catch (err) {
    await gw.close().catch(() => {}); // releases the cache LOCK
    throw err;
  }
  // `davgate cache ...` finds the running gateway's admin listener here.
  await writeFile(adminFile, reachableUrl(adminUrl) + '\n', { mode: 0o600 });
  if (!`${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`.includes('--max-semi-space-size')) {
    gw.app.log.info('started without davgate\'s memory settings (the davgate bin, npm start and the image set them): expect ~20-40 MB more RSS under load');
  }
  console.log(`davgate ${VERSION}: serving ${describeUpstream(config)} (cache ${config.cache.dir})`);
  console.log(`davgate: serving WebDAV at ${url}/`);
  console.log(`davgate: admin at ${adminUrl}/`);
  console.log(`davgate: mount it with e.g.  rclone mount :webdav: /mnt/dav --webdav-url ${url}/   (see README, "Mounting")`);
}
