import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';
import { z } from 'zod';
import { ConfigError } from './errors.js';

// One schema for every source of configuration: YAML file < DAVGATE_* env < CLI flags.
// Validated once at start-up, every problem reported by its key, then frozen.

const MiB = 1024 * 1024;

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'expected HOST:PORT')
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'port must be 0-65535');

/** "4MiB", "512k", "10G" or a plain number of bytes. */
const byteSize = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `not a size: "${v}" (use e.g. 4MiB, 512k, 10G)` });
    return z.NEVER;
  }
  const unit = { '': 1, k: 1024, m: MiB, g: 1024 * MiB, t: 1024 * 1024 * MiB }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * unit);
});

/** "5s", "250ms", "2m" or a number of milliseconds. */
const duration = z.union([z.number().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(v.trim());
  if (!m) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `not a duration: "${v}" (use e.g. 5s, 250ms)` });
    return z.NEVER;
  }
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h']);
});

/** A boolean, also spelt as the environment spells it ("true", "1", ...). */
const flag = z.union([z.boolean(), z.enum(['true', 'false', '1', '0'])]).transform((v) => v === true || v === 'true' || v === '1');

export const configSchema = z.object({
  upstream: z.discriminatedUnion('type', [
    z.object({
      type: z.literal('fs'),
      root: z.string().min(1).default('./data'),
      /** Temporary files of uploads idle this long are what a crash left: removed at start-up and periodically. */
      tempMaxAge: duration.pipe(z.number().min(1000)).default(3_600_000),
      /** Watch the tree for changes made behind the gateway's back and invalidate them at once. */
      watch: flag.default(false),
    }).strict(),
    z.object({
      type: z.literal('s3'),
      /** Omit for AWS; e.g. http://127.0.0.1:7480 for Ceph RGW or MinIO. */
      endpoint: z.string().url().optional(),
      region: z.string().default('us-east-1'),
      bucket: z.string().min(1),
      prefix: z.string().default(''),
      /** Path-style addressing (http://host/bucket/key), which most non-AWS stores need. */
      forcePathStyle: z.boolean().default(true),
      /** Else the standard AWS environment variables / profiles are used. */
      accessKeyId: z.string().optional(),
      secretAccessKey: z.string().optional(),
      quotaBytes: byteSize.optional(),
      partSize: byteSize.pipe(z.number().int().min(5 * MiB)).default(8 * MiB),
      /** A single-part object's ETag is its MD5 (answered as oc:checksums); false for SSE-C/SSE-KMS buckets. */
      etagIsMd5: z.boolean().default(true),
      /** Multipart uploads open longer than this are what a crash left: aborted at start-up and hourly. */
      abortUploadsAfter: duration.pipe(z.number().min(1000)).default(86_400_000),
      /**
       * How a collection's keys are deleted: DeleteObjects of 1,000 keys (batch), or one
       * DeleteObject per key (single), for stores that mishandle the batch call (Ceph RGW 16.2
       * with bucket notifications crashes on it).
       */
      deleteMode: z.enum(['batch', 'single']).default('batch'),
    }).strict(),
    z.object({
      type: z.literal('webdav'),
      url: z.string().url(),
      username: z.string().optional(),
      password: z.string().optional(),
      /** Forward each client's own Basic credentials upstream; the user then keys the cache. */
      passThroughAuth: z.boolean().default(false),
      quotaBytes: byteSize.optional(),
    }).strict(),
  ]).default({ type: 'fs', root: './data', tempMaxAge: 3_600_000, watch: false }),
  /** Per-operation upstream limits and retries (reads only are retried). */
  upstreamPolicy: z.object({
    timeout: duration.default(30_000),
    retries: z.number().int().min(0).max(10).default(2),
    /** After this many consecutive failures the upstream is considered down for `downFor`. */
    failureThreshold: z.number().int().min(1).default(3),
    downFor: duration.default(1000),
  }).strict().default({}),
  cache: z.object({
    dir: z.string().min(1).default('./.davgate/cache'),
    blockSize: byteSize.pipe(z.number().int().min(4096).max(256 * MiB)).default(4 * MiB),
    maxBytes: byteSize.pipe(z.number().int().min(MiB)).default(10 * 1024 * MiB),
    /** Eviction starts above highWatermark*maxBytes and stops below lowWatermark*maxBytes. */
    highWatermark: z.number().gt(0).max(1).default(0.95),
    lowWatermark: z.number().gt(0).max(1).default(0.85),
    ttl: duration.default(5000),
    nodeTable: z.enum(['memory', 'sqlite']).default('memory'),
    readAheadMaxBlocks: z.number().int().min(0).max(64).default(8),
    /** Each holds one block in memory until it is on the cache disk; on loopback 4 read cold as fast as 16, with less memory. */
    maxInflightFetches: z.number().int().min(1).max(256).default(4),
    /** Memory tier for small blocks (0 disables it), and the largest block it keeps. */
    memoryBytes: byteSize.default(32 * MiB),
    memoryMaxBlockBytes: byteSize.default(256 * 1024),
    /** After 3 failed block writes in a row the cache disk is bypassed this long, then tried again. */
    diskRetryAfter: duration.pipe(z.number().min(100)).default(30_000),
    /** Directory listings kept for the TTL, counted in entries over all directories (0 disables). */
    listingEntries: z.number().int().min(0).default(100_000),
    /** Node records held in memory (the only ones that can be fresh); ~500 bytes each. */
    nodeEntries: z.number().int().min(1000).default(100_000),
    /** Cache policy per path prefix or glob; the first rule that matches decides (cachemgr/policy.ts). */
    rules: z.array(z.object({
      path: z.string().min(1),
      ttl: duration.optional(),
      bypass: z.boolean().optional(),
      maxFileSize: byteSize.optional(),
      pin: z.boolean().optional(),
    }).strict()).default([]),
    /** Bytes of block files pinned files may hold; default half of maxBytes. */
    pinnedMaxBytes: byteSize.optional(),
  }).strict().default({}),
  listen: hostPort.default('127.0.0.1:8080'),
  admin: z.object({
    listen: hostPort.default('127.0.0.1:9180'),
    /**
     * Bearer token for the admin listener (invalidate, cache maintenance, and /metrics unless
     * openMetrics). Required when it listens beyond loopback, unless auth.allowAnonymousPublic.
     */
    token: z.string().min(16, 'must be at least 16 characters').optional(),
    /** /metrics without the token (a Prometheus that cannot send one); /healthz and /readyz are always open. */
    openMetrics: z.boolean().default(false),
  }).strict().default({}),
  /** POST /notify/s3 on the admin listener: S3 bucket notifications invalidate what they name. */
  notify: z.object({
    /** The secret every notification must carry (the topic's OpaqueData); without it the endpoint is off. */
    secret: z.string().min(16, 'must be at least 16 characters').optional(),
    maxBodyBytes: byteSize.pipe(z.number().int().min(1024)).default(MiB),
    /** Event ids remembered to drop redeliveries. */
    dedupeEntries: z.number().int().min(1).default(10_000),
  }).strict().default({}),
  auth: z.object({
    htpasswd: z.string().optional(),
    readOnlyUsers: z.array(z.string()).default([]),
    realm: z.string().default('davgate'),
    /** Listening beyond loopback without auth must be asked for explicitly. */
    allowAnonymousPublic: z.boolean().default(false),
    /** Failed logins allowed per client address and per user name within the window; then 429. */
    maxFailures: z.number().int().min(1).default(10),
    failureWindow: duration.pipe(z.number().min(1000)).default(60_000),
  }).strict().default({}),
  webdav: z.object({
    allowInfiniteDepth: z.boolean().default(false),
    maxXmlBodyBytes: byteSize.default(MiB),
    /** Element nesting and element count of an XML body (400 and 413 beyond). */
    maxXmlDepth: z.number().int().min(8).max(1000).default(64),
    maxXmlElements: z.number().int().min(16).default(10_000),
    /** Request target length and path segments (414 beyond), header fields (431 beyond). */
    maxUrlBytes: z.number().int().min(256).default(8192),
    maxPathSegments: z.number().int().min(8).default(256),
    maxHeaders: z.number().int().min(16).default(100),
    /** Time for a request's headers to arrive (slowloris), and silence after which a connection closes. */
    headersTimeout: duration.pipe(z.number().min(1000)).default(20_000),
    idleTimeout: duration.pipe(z.number().min(1000)).default(60_000),
    /** Open connections per client address; more get 503. */
    maxConnectionsPerClient: z.number().int().min(1).default(64),
    maxPutBytes: byteSize.optional(),
    /** Lock timeouts asked for (Second-n, Infinite) are capped here; also the default. */
    maxLockTimeout: duration.pipe(z.number().min(1000)).default(3_600_000),
    /**
     * Origins allowed by CORS (browser clients); "*" allows any origin without credentials.
     * Empty by default: a gateway on loopback without auth must not be readable by any web page.
     */
    corsOrigins: z.array(z.string()).default([]),
    /** AppleDouble ("._name") and .DS_Store files from macOS: store them like any file, or refuse them (403). */
    appleDouble: z.enum(['store', 'refuse']).default('store'),
  }).strict().default({}),
  /**
   * Several gateways, one namespace: locks and dead properties live in this Redis, and every
   * change is announced to the other instances. Without it, each gateway is on its own.
   */
  redis: z.object({
    url: z.string().regex(/^rediss?:\/\//, 'expected redis://HOST:PORT or rediss://...'),
    /** Prefix of every key and of the channel, so that several namespaces can share one Redis. */
    keyPrefix: z.string().default('davgate:'),
    /** A command not answered in this time fails (503): a request never waits on a dead Redis. */
    commandTimeout: duration.pipe(z.number().min(50)).default(1000),
    /** How long a write waits for the other gateways to confirm they dropped what it changed. */
    ackTimeout: duration.pipe(z.number().min(10)).default(500),
  }).strict().optional(),
  /** HTTPS on the WebDAV listener: PEM files, re-read on SIGHUP and `davgate reload`. */
  tls: z.object({
    cert: z.string().min(1),
    key: z.string().min(1),
  }).strict().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
}).strict().superRefine((c, ctx) => {
  if (c.cache.lowWatermark >= c.cache.highWatermark) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['cache', 'lowWatermark'], message: 'must be below cache.highWatermark' });
  }
  if (!c.admin.token && !c.auth.allowAnonymousPublic && !isLoopback(hostOf(c.admin.listen))) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['admin', 'listen'], message: `${c.admin.listen} is not loopback: set admin.token (DAVGATE_ADMIN_TOKEN), or allow anonymous access explicitly (--allow-anonymous-public)` });
  }
  if (c.notify.secret && c.upstream.type !== 's3') {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['notify', 'secret'], message: 'bucket notifications need an s3 upstream' });
  }
  if (!c.auth.htpasswd && !c.auth.allowAnonymousPublic && !isLoopback(hostOf(c.listen))) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['listen'], message: `${c.listen} is not loopback: set auth.htpasswd, or allow anonymous access explicitly (--allow-anonymous-public)` });
  }
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

export function hostOf(hp: string): string {
  const i = hp.lastIndexOf(':');
  return hp.slice(0, i).replace(/^\[|\]$/g, '');
}
export function portOf(hp: string): number {
  return Number(hp.slice(hp.lastIndexOf(':') + 1));
}
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Environment variables DAVGATE_<SECTION>_<KEY> (e.g. DAVGATE_CACHE_BLOCK_SIZE) mapped to schema keys. */
const ENV_KEYS: Record<string, string[]> = {
  DAVGATE_UPSTREAM_TYPE: ['upstream', 'type'],
  DAVGATE_UPSTREAM_ROOT: ['upstream', 'root'],
  DAVGATE_UPSTREAM_URL: ['upstream', 'url'],
  DAVGATE_UPSTREAM_ENDPOINT: ['upstream', 'endpoint'],
  DAVGATE_UPSTREAM_BUCKET: ['upstream', 'bucket'],
  DAVGATE_UPSTREAM_PREFIX: ['upstream', 'prefix'],
  DAVGATE_UPSTREAM_REGION: ['upstream', 'region'],
  DAVGATE_UPSTREAM_USERNAME: ['upstream', 'username'],
  DAVGATE_UPSTREAM_PASSWORD: ['upstream', 'password'],
  DAVGATE_UPSTREAM_DELETE_MODE: ['upstream', 'deleteMode'],
  DAVGATE_UPSTREAM_WATCH: ['upstream', 'watch'],
  DAVGATE_NOTIFY_SECRET: ['notify', 'secret'],
  DAVGATE_CACHE_DIR: ['cache', 'dir'],
  DAVGATE_CACHE_BLOCK_SIZE: ['cache', 'blockSize'],
  DAVGATE_CACHE_MAX_BYTES: ['cache', 'maxBytes'],
  DAVGATE_CACHE_TTL: ['cache', 'ttl'],
  DAVGATE_CACHE_NODE_TABLE: ['cache', 'nodeTable'],
  DAVGATE_LISTEN: ['listen'],
  DAVGATE_ADMIN_LISTEN: ['admin', 'listen'],
  DAVGATE_ADMIN_TOKEN: ['admin', 'token'],
  DAVGATE_AUTH_HTPASSWD: ['auth', 'htpasswd'],
  DAVGATE_LOG_LEVEL: ['logLevel'],
  DAVGATE_TLS_CERT: ['tls', 'cert'],
  DAVGATE_TLS_KEY: ['tls', 'key'],
  DAVGATE_REDIS_URL: ['redis', 'url'],
};

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const k of path.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    // An upstream of another type replaces the one below it whole: their keys do not mix.
    const t = v !== null && typeof v === 'object' ? (v as { type?: unknown }).type : undefined;
    if (k === 'upstream' && t !== undefined && t !== (b as { type?: unknown } | undefined)?.type) { out[k] = v; continue; }
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
      ? merge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/**
 * Build the configuration from a YAML file (optional), the environment and flag overrides
 * (already shaped like the schema). Throws ConfigError with one line per problem.
 */
export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Record<string, unknown> } = {}): Config {
  let fromFile: Record<string, unknown> = {};
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`config file ${opts.file}: ${(err as Error).message}`);
    }
    try {
      // Loaded only with a config file: a few MB of resident memory otherwise spent for nothing.
      const { parse: parseYaml } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
      fromFile = (parseYaml(text) ?? {}) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${opts.file}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof fromFile !== 'object' || Array.isArray(fromFile)) throw new ConfigError(`config file ${opts.file}: expected a mapping at the top level`);
  }
  const fromEnv: Record<string, unknown> = {};
  for (const [name, path] of Object.entries(ENV_KEYS)) {
    const v = opts.env?.[name];
    if (v !== undefined && v !== '') setPath(fromEnv, path, v);
  }
  const raw = merge(merge(fromFile, fromEnv), opts.overrides ?? {});
  // The upstream type defaults to fs, also when only some of its keys are given.
  const up = raw.upstream as Record<string, unknown> | undefined;
  if (up && typeof up === 'object' && up.type === undefined) up.type = 'fs';
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`);
  }
  const c = parsed.data;
  if (c.upstream.type === 'fs') c.upstream.root = resolve(c.upstream.root);
  c.cache.dir = resolve(c.cache.dir);
  if (c.auth.htpasswd) c.auth.htpasswd = resolve(c.auth.htpasswd);
  if (c.tls) c.tls = { cert: resolve(c.tls.cert), key: resolve(c.tls.key) };
  return deepFreeze(c);
}

const SECRET_KEYS = new Set(['secretAccessKey', 'password', 'token', 'secret']);

/** A URL's user:password part, masked. */
function maskUserinfo(v: string): string {
  return v.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');
}

/** The configuration with secrets masked, for printing (`config check`) and logs. */
export function redacted(c: Config): unknown {
  return JSON.parse(JSON.stringify(c, (k, v: unknown) => (SECRET_KEYS.has(k) && v ? '***' : k === 'url' && typeof v === 'string' ? maskUserinfo(v) : v))) as unknown;
}
