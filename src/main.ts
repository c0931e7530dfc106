#!/usr/bin/env node
import { mkdir } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { loadConfig, hostOf, portOf, redacted, type Config } from './config.js';
import { DavgateError } from './errors.js';
import { openUpstream } from './upstream/index.js';
import { Metrics } from './metrics.js';
import { buildGateway } from './gateway/app.js';

// The command line: `davgate serve` and `davgate config check`. Flags override DAVGATE_*
// environment variables, which override the YAML file.

/** --upstream takes a directory, an s3://bucket/prefix URL or an http(s):// WebDAV URL. */
function upstreamFrom(o: Record<string, unknown>): Record<string, unknown> | undefined {
  const u = o.upstream as string | undefined;
  // S3 settings alone adjust an S3 upstream configured elsewhere (file, environment).
  if (u === undefined) return o.s3Endpoint || o.s3Region ? { endpoint: o.s3Endpoint, region: o.s3Region } : undefined;
  const s3 = /^s3:\/\/([^/]+)\/?(.*)$/.exec(u);
  if (s3) return { type: 's3', bucket: s3[1], prefix: s3[2], endpoint: o.s3Endpoint, region: o.s3Region };
  if (/^https?:\/\//i.test(u)) return { type: 'webdav', url: u };
  return { type: 'fs', root: u };
}

function overridesFrom(o: Record<string, unknown>): Record<string, unknown> {
  return {
    upstream: upstreamFrom(o),
    cache: { dir: o.cache, blockSize: o.blockSize, maxBytes: o.cacheMaxBytes, ttl: o.ttl, nodeTable: o.nodeTable },
    listen: o.listen,
    admin: { listen: o.adminListen },
    auth: { htpasswd: o.htpasswd, allowAnonymousPublic: o.allowAnonymousPublic },
    webdav: { allowInfiniteDepth: o.allowInfiniteDepth },
    logLevel: o.logLevel,
  };
}

function configFrom(o: Record<string, unknown>): Config {
  return loadConfig({ file: o.config as string | undefined, env: process.env, overrides: overridesFrom(o) });
}

function withConfigOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML configuration file')
    .option('--upstream <dir|s3://bucket/prefix|http(s)://url>', 'what to serve: a directory, an S3 bucket, or a WebDAV server')
    .option('--s3-endpoint <url>', 'S3 endpoint for s3:// upstreams (omit for AWS)')
    .option('--s3-region <region>', 'S3 region')
    .option('--cache <dir>', 'cache directory (cache.dir)')
    .option('--listen <host:port>', 'WebDAV listen address (default 127.0.0.1:8080)')
    .option('--admin-listen <host:port>', 'admin listen address for /metrics, /healthz (default 127.0.0.1:9180)')
    .option('--block-size <bytes>', 'cache block size, e.g. 4MiB')
    .option('--cache-max-bytes <bytes>', 'cache size limit, e.g. 10GiB')
    .option('--ttl <duration>', 'revalidate nodes older than this, e.g. 5s')
    .addOption(new Option('--node-table <kind>', 'node table store').choices(['memory', 'sqlite']))
    .option('--htpasswd <file>', 'enable Basic auth with this bcrypt htpasswd file')
    .option('--allow-anonymous-public', 'allow listening beyond loopback without auth')
    .option('--allow-infinite-depth', 'answer PROPFIND Depth: infinity')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']));
}

function describeUpstream(config: Config): string {
  const u = config.upstream;
  return u.type === 'fs' ? u.root : u.type === 's3' ? `s3://${u.bucket}/${u.prefix} at ${u.endpoint ?? 'AWS'}` : u.url;
}

async function serve(o: Record<string, unknown>): Promise<void> {
  const config = configFrom(o);
  if (config.upstream.type === 'fs' && !o.upstream && !o.config && !process.env.DAVGATE_UPSTREAM_ROOT) await mkdir(config.upstream.root, { recursive: true });
  const metrics = new Metrics();
  const upstream = await openUpstream(config, {
    onRetry: (operation) => metrics.upstreamRetries.inc({ operation }),
    onHealth: (up) => metrics.upstreamUp.set(up ? 1 : 0),
  });
  const gw = await buildGateway(config, upstream, { metrics });
  // One real request before the first client's: the S3 SDK loads its credential chain and
  // connections open on first use (~0.3 s), which would otherwise land on the first reader.
  // A failure here is only logged: the gateway starts anyway and /readyz tells.
  try {
    for await (const entry of upstream.list('/')) { void entry; break; }
  } catch (err) {
    gw.app.log.warn({ err }, 'upstream not reachable at start-up');
  }
  const stop = async (signal: string) => {
    gw.app.log.info(`${signal}: shutting down`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await gw.close().catch(() => {});
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  // Last line of defence: one bad request must never take the gateway down (DESIGN.md, Gateway).
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
  console.log(`davgate: serving ${describeUpstream(config)} (cache ${config.cache.dir})`);
  console.log(`davgate: serving WebDAV at ${url}/`);
  console.log(`davgate: admin at ${adminUrl}/`);
  console.log(`davgate: mount it with e.g.  rclone mount :webdav: /mnt/dav --webdav-url ${url}/   (see README, "Mounting")`);
}

const program = new Command('davgate').description('A caching WebDAV gateway').showHelpAfterError();
withConfigOptions(program.command('serve').description('serve the upstream through the cache')).action(serve);
withConfigOptions(program.command('config').description('check a configuration').argument('<action>', 'check'))
  .action((action: string, o: Record<string, unknown>) => {
    if (action !== 'check') throw new DavgateError('DAVGATE_CONFIG', `unknown config action "${action}"`);
    console.log(JSON.stringify(redacted(configFrom(o)), null, 2));
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  const msg = err instanceof DavgateError ? err.message : (err as Error)?.message ?? String(err);
  console.error(`davgate: ${msg}`);
  process.exit(2);
});
