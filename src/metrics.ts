import { statfs } from 'node:fs/promises';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// One Registry per app (tests build many). Labels are low-cardinality only:
// method, status, operation, result — never a path or a user name.
// Every labelled counter is created at zero for its known label values, so a dashboard panel
// on a rare event (a 5xx, a breaker opening) shows 0 rather than "no data".

export const METHODS = ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'OTHER'] as const;
const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx'] as const;
export const UPSTREAM_OPERATIONS = ['stat', 'list', 'read', 'write', 'mkdir', 'remove', 'move', 'copy', 'quota', 'setmtime'] as const;
const UPSTREAM_RESULTS = ['ok', 'not_found', 'error'] as const;
const RETRIED = ['stat', 'list', 'read', 'quota'] as const;

/** What a block lookup found; `join` and `prefetch` are also counted on their own series. */
export type BlockLookup = 'hit' | 'miss' | 'join' | 'prefetch';

/** Values read from the running gateway at scrape time. */
export interface MetricSources {
  /** 0 closed, 1 half-open (the next call probes), 2 open. */
  breakerState?(): number;
  activeLocks?(): number | undefined | Promise<number | undefined>;
  nodes?(): number;
  memoryTierBytes?(): number;
  pinnedBytes?(): number;
  pinnedLimitBytes?(): number;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

function zero<T extends string>(c: Counter<T> | Histogram<T>, ...dims: Array<readonly [T, readonly string[]]>): void {
  const combos = dims.reduce<Array<Record<string, string>>>((acc, [name, values]) => acc.flatMap((l) => values.map((v) => ({ ...l, [name]: v }))), [{}]);
  for (const labels of combos) {
    if (c instanceof Histogram) c.zero(labels as Partial<Record<T, string>>);
    else c.inc(labels as Partial<Record<T, string>>, 0);
  }
}

/**
 * Increments of a labelled counter kept as plain numbers and added to prom-client's counter when
 * it is collected (at scrape): a hot request pays one Map lookup, not prom-client's label
 * checks and hashing. `labelsOf` turns a key into its labels, once per key.
 */
class Tally<T extends string> {
  readonly #pending = new Map<string, { labels: Partial<Record<T, string>>; n: number }>();
  constructor(private readonly labelsOf: (key: string) => Partial<Record<T, string>>) {}

  add(key: string, n = 1): void {
    const p = this.#pending.get(key);
    if (p) p.n += n;
    else this.#pending.set(key, { labels: this.labelsOf(key), n });
  }

  flushInto(counter: Counter<T>): void {
    for (const p of this.#pending.values()) {
      if (p.n === 0) continue;
      counter.inc(p.labels, p.n);
      p.n = 0;
    }
  }
}

export class Metrics {
  readonly registry = new Registry();
  #sources: MetricSources = {};
  #cacheDir: string | undefined;
  readonly #reg = [this.registry];

  readonly buildInfo = new Gauge({ name: 'davgate_build_info', help: 'Always 1; the labels carry the davgate and Node.js versions', labelNames: ['version', 'node'] as const, registers: this.#reg });
  /** Per (method, status): methods are a closed set, statuses are what the gateway answers. */
  readonly #durations = new Map<string, { observe(v: number): void }>();
  readonly #requestTally = new Tally<'method' | 'status'>((k) => ({ method: k.slice(0, k.indexOf(' ')), status: k.slice(k.indexOf(' ') + 1) }));
  readonly requests: Counter<'method' | 'status'> = new Counter({
    name: 'davgate_requests_total', help: 'WebDAV requests by method and status', labelNames: ['method', 'status'] as const, registers: this.#reg,
    collect: (): void => this.#requestTally.flushInto(this.requests),
  });
  readonly requestDuration = new Histogram({
    name: 'davgate_request_duration_seconds', help: 'WebDAV request duration by method and status class (2xx..5xx), until the last byte is sent',
    labelNames: ['method', 'status_class'] as const, buckets: LATENCY_BUCKETS, registers: this.#reg,
  });
  readonly connections = new Gauge({ name: 'davgate_connections_open', help: 'Client connections open on the WebDAV listener', registers: this.#reg });
  readonly connectionsRefused = new Counter({ name: 'davgate_connections_refused_total', help: 'Connections refused (503) because their client address had webdav.maxConnectionsPerClient open', registers: this.#reg });
  readonly inFlight = new Gauge({ name: 'davgate_requests_in_flight', help: 'WebDAV requests being answered now', registers: this.#reg });
  readonly clientAborts = new Counter({ name: 'davgate_client_aborts_total', help: 'Requests the client gave up on before the answer was complete', labelNames: ['method'] as const, registers: this.#reg });
  readonly authFailures = new Counter({ name: 'davgate_auth_failures_total', help: 'Refused logins: bad_credentials (a wrong name or password), rate_limited (429 after too many)', labelNames: ['reason'] as const, registers: this.#reg });
  readonly internalErrors = new Counter({ name: 'davgate_internal_errors_total', help: 'Requests answered 500 because of an unexpected error (a bug: see the log for its stack)', registers: this.#reg });

  readonly #lookupTally = new Tally<'result'>((result) => ({ result }));
  readonly blockRequests: Counter<'result'> = new Counter({
    name: 'davgate_cache_block_requests_total', help: 'Block lookups: hit (in memory or on the cache disk) or miss (fetched, or joined a fetch in flight)', labelNames: ['result'] as const, registers: this.#reg,
    collect: (): void => this.#lookupTally.flushInto(this.blockRequests),
  });
  readonly blockJoins = new Counter({ name: 'davgate_cache_singleflight_joins_total', help: 'Block misses that joined an upstream fetch already in flight instead of starting one', registers: this.#reg });
  readonly readAhead = new Counter({ name: 'davgate_cache_readahead_blocks_total', help: 'Blocks fetched ahead of the reader (sequential read-ahead)', registers: this.#reg });
  readonly memoryHits = new Counter({ name: 'davgate_cache_memory_hits_total', help: 'Block hits answered from the memory tier', registers: this.#reg });
  readonly #servedTally = new Tally<'source'>((source) => ({ source }));
  readonly bytesServed: Counter<'source'> = new Counter({
    name: 'davgate_served_bytes_total', help: 'Bytes of file content read for clients by source (cache or upstream)', labelNames: ['source'] as const, registers: this.#reg,
    collect: (): void => this.#servedTally.flushInto(this.bytesServed),
  });
  readonly cacheBytes = new Gauge({ name: 'davgate_cache_bytes', help: 'Bytes of block files in the cache', registers: this.#reg });
  readonly cacheBlockCount = new Gauge({ name: 'davgate_cache_blocks', help: 'Block files in the cache', registers: this.#reg });
  readonly cacheLimit = new Gauge({ name: 'davgate_cache_limit_bytes', help: 'Configured cache size limit (cache.maxBytes)', registers: this.#reg });
  readonly evictedBytes = new Counter({ name: 'davgate_cache_evicted_bytes_total', help: 'Bytes evicted from the cache', registers: this.#reg });
  readonly evictedBlocks = new Counter({ name: 'davgate_cache_evicted_blocks_total', help: 'Blocks evicted from the cache', registers: this.#reg });
  readonly evictedRecent = new Counter({ name: 'davgate_cache_evicted_recently_used_blocks_total', help: 'Evicted blocks that had been read in the minute before (the cache is too small for the working set)', registers: this.#reg });
  readonly cacheDiskBypassed = new Gauge({ name: 'davgate_cache_disk_bypassed', help: '1 while the cache disk is bypassed after repeated write errors (blocks served from the upstream, not kept)', registers: this.#reg });
  readonly cacheDiskBypasses = new Counter({ name: 'davgate_cache_disk_bypasses_total', help: 'Times the cache disk was bypassed after repeated write errors', registers: this.#reg });
  readonly corruptBlocks = new Counter({ name: 'davgate_cache_corrupt_blocks_total', help: 'Block files dropped because size or checksum was wrong', registers: this.#reg });

  readonly upstreamRequests = new Counter({ name: 'davgate_upstream_requests_total', help: 'Upstream operations by operation and result', labelNames: ['operation', 'result'] as const, registers: this.#reg });
  readonly upstreamDuration = new Histogram({
    name: 'davgate_upstream_request_duration_seconds', help: 'Upstream operation duration (retries included) by operation and result',
    labelNames: ['operation', 'result'] as const, buckets: LATENCY_BUCKETS, registers: this.#reg,
  });
  readonly upstreamBytes = new Counter({ name: 'davgate_upstream_read_bytes_total', help: 'Bytes read from the upstream', registers: this.#reg });
  readonly upstreamRetries = new Counter({ name: 'davgate_upstream_retries_total', help: 'Upstream operations retried after a transient failure', labelNames: ['operation'] as const, registers: this.#reg });
  readonly upstreamUp = new Gauge({ name: 'davgate_upstream_up', help: '1 while the upstream answers, 0 while it is considered down', registers: this.#reg });
  readonly breakerOpens = new Counter({ name: 'davgate_upstream_breaker_opens_total', help: 'Times the upstream circuit breaker opened', registers: this.#reg });
  readonly staleServed = new Counter({ name: 'davgate_stale_served_total', help: 'Requests answered from cached data because the upstream could not be reached', registers: this.#reg });
  readonly notifications = new Counter({
    name: 'davgate_notifications_total', labelNames: ['result'] as const, registers: this.#reg,
    help: 'S3 bucket notification records on POST /notify/s3: received = accepted (invalidated) + duplicate (a redelivery) + ignored (another bucket or outside the prefix); rejected counts refused requests (secret, body)',
  });
  readonly revalidations = new Counter({ name: 'davgate_node_revalidations_total', help: 'Node revalidations by result (same, changed, gone)', labelNames: ['result'] as const, registers: this.#reg });

  readonly busMessages = new Counter({ name: 'davgate_bus_messages_total', help: 'Invalidation messages exchanged with the other gateways of the namespace (redis.url): sent or received', labelNames: ['direction'] as const, registers: this.#reg });
  readonly busAckTimeouts = new Counter({ name: 'davgate_bus_ack_timeouts_total', help: 'Invalidation messages some gateway did not acknowledge within redis.ackTimeout; the write was answered anyway', registers: this.#reg });
  readonly busMissed = new Counter({ name: 'davgate_bus_missed_total', help: 'Reconnections to the invalidation bus, after which every cached node record was dropped (messages may have been missed)', registers: this.#reg });
  readonly sharedStateUp = new Gauge({ name: 'davgate_shared_state_up', help: '1 while the shared state (redis.url) is reachable, 0 while not; 1 without redis.url', registers: this.#reg });

  constructor(opts: { defaultMetrics?: boolean; version?: string } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.buildInfo.set({ version: opts.version ?? 'unknown', node: process.versions.node }, 1);
    this.upstreamUp.set(1);
    this.sharedStateUp.set(1);
    zero(this.busMessages, ['direction', ['sent', 'received']]);
    zero(this.requestDuration, ['method', METHODS], ['status_class', STATUS_CLASSES]);
    zero(this.clientAborts, ['method', METHODS]);
    zero(this.authFailures, ['reason', ['bad_credentials', 'rate_limited']]);
    zero(this.blockRequests, ['result', ['hit', 'miss']]);
    zero(this.bytesServed, ['source', ['cache', 'upstream']]);
    zero(this.upstreamRequests, ['operation', UPSTREAM_OPERATIONS], ['result', UPSTREAM_RESULTS]);
    zero(this.upstreamDuration, ['operation', UPSTREAM_OPERATIONS], ['result', UPSTREAM_RESULTS]);
    zero(this.upstreamRetries, ['operation', RETRIED]);
    zero(this.notifications, ['result', ['received', 'accepted', 'duplicate', 'ignored', 'rejected']]);
    zero(this.revalidations, ['result', ['same', 'changed', 'gone']]);
    // Gauges read at scrape time; `value` is an arrow, so it sees this Metrics, while collect's
    // own `this` is the gauge.
    const live = (name: string, help: string, value: () => number | undefined | Promise<number | undefined>) => new Gauge({
      name, help, registers: this.#reg,
      async collect() {
        const v = await value();
        if (v !== undefined) this.set(v);
      },
    });
    live('davgate_upstream_breaker_state', 'Upstream circuit breaker: 0 closed, 1 half-open (the next call probes), 2 open', () => this.#sources.breakerState?.() ?? 0);
    live('davgate_webdav_locks', 'WebDAV locks held now (unexpired)', async () => (await this.#sources.activeLocks?.()) ?? 0);
    live('davgate_cache_nodes', 'Node records held in memory', () => this.#sources.nodes?.() ?? 0);
    live('davgate_cache_memory_tier_bytes', 'Bytes of small blocks held in the memory tier', () => this.#sources.memoryTierBytes?.() ?? 0);
    live('davgate_cache_pinned_bytes', 'Bytes of block files of pinned files (never evicted)', () => this.#sources.pinnedBytes?.() ?? 0);
    live('davgate_cache_pinned_limit_bytes', 'Limit of the bytes pinned files may hold (cache.pinnedMaxBytes)', () => this.#sources.pinnedLimitBytes?.() ?? 0);
    const disk = (name: string, help: string, pick: (s: { bavail: number; blocks: number; bsize: number }) => number) => live(name, help, async () => {
      if (!this.#cacheDir) return undefined;
      const s = await statfs(this.#cacheDir).catch(() => undefined);
      return s ? pick(s) : undefined;
    });
    disk('davgate_cache_disk_free_bytes', 'Free bytes (for unprivileged users) on the file system of the cache directory', (s) => s.bavail * s.bsize);
    disk('davgate_cache_disk_size_bytes', 'Size of the file system of the cache directory', (s) => s.blocks * s.bsize);
  }

  /** Late-bound readers of gateway state, collected at scrape time. */
  observe(sources: MetricSources): void {
    this.#sources = { ...this.#sources, ...sources };
  }

  /** The cache directory whose file system the disk gauges describe. */
  observeCacheDir(dir: string): void {
    this.#cacheDir = dir;
  }

  blockLookup(result: BlockLookup): void {
    if (result === 'prefetch') { this.readAhead.inc(); return; }
    this.#lookupTally.add(result === 'hit' ? 'hit' : 'miss');
    if (result === 'join') this.blockJoins.inc();
  }

  request(method: string, status: number, seconds: number): void {
    this.#requestTally.add(method + ' ' + status);
    // One label child per (method, status class), made once; prom-client still hashes its
    // labels on each observe (there is no way to add to a histogram's buckets at scrape).
    const statusClass = Math.min(5, Math.max(1, Math.floor(status / 100)));
    const k = method + ' ' + statusClass;
    let d = this.#durations.get(k);
    if (!d) {
      d = this.requestDuration.labels(method, `${statusClass}xx`);
      this.#durations.set(k, d);
    }
    d.observe(seconds);
  }

  /** Bytes of file content read for a client, from the cache or the upstream. */
  served(source: 'cache' | 'upstream', bytes: number): void {
    this.#servedTally.add(source, bytes);
  }

  upstreamCall(operation: string, result: string, seconds: number): void {
    this.upstreamRequests.inc({ operation, result });
    this.upstreamDuration.observe({ operation, result }, seconds);
  }
}
