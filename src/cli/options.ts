import { Command, Option } from 'commander';
import { loadConfig, type Config } from '../config.js';

// Options shared by every command that reads the configuration. Flags override DAVGATE_*
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
    tls: o.tlsCert || o.tlsKey ? { cert: o.tlsCert, key: o.tlsKey } : undefined,
  };
}

export function configFrom(o: Record<string, unknown>): Config {
  return loadConfig({ file: o.config as string | undefined, env: process.env, overrides: overridesFrom(o) });
}

export function withConfigOptions(cmd: Command): Command {
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
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain) ...')
    .option('--tls-key <file>', '... and this PEM private key; re-read on SIGHUP and `davgate reload`')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']));
}
