import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// One Registry per app (tests build many). Labels are low-cardinality only:
// method, status, operation, result — never a path or a user name.

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'davgate_requests_total', help: 'WebDAV requests by method and status', labelNames: ['method', 'status'] as const, registers: [this.registry] });
  readonly requestDuration = new Histogram({
    name: 'davgate_request_duration_seconds', help: 'WebDAV request duration', labelNames: ['method'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry],
  });
  readonly cacheBlocks = new Counter({ name: 'davgate_cache_block_requests_total', help: 'Block lookups by result: hit, miss, join (joined an in-flight fetch), prefetch (read-ahead started)', labelNames: ['result'] as const, registers: [this.registry] });
  readonly bytesServed = new Counter({ name: 'davgate_served_bytes_total', help: 'Bytes of file content read for clients by source', labelNames: ['source'] as const, registers: [this.registry] });
  readonly upstreamRequests = new Counter({ name: 'davgate_upstream_requests_total', help: 'Upstream operations by operation and result', labelNames: ['operation', 'result'] as const, registers: [this.registry] });
  readonly upstreamBytes = new Counter({ name: 'davgate_upstream_read_bytes_total', help: 'Bytes read from the upstream', registers: [this.registry] });
  readonly cacheBytes = new Gauge({ name: 'davgate_cache_bytes', help: 'Bytes of block files in the cache', registers: [this.registry] });
  readonly cacheBlockCount = new Gauge({ name: 'davgate_cache_blocks', help: 'Block files in the cache', registers: [this.registry] });
  readonly evictions = new Counter({ name: 'davgate_cache_evicted_bytes_total', help: 'Bytes evicted from the cache', registers: [this.registry] });
  readonly corruptBlocks = new Counter({ name: 'davgate_cache_corrupt_blocks_total', help: 'Block files dropped because size or checksum was wrong', registers: [this.registry] });
  readonly upstreamRetries = new Counter({ name: 'davgate_upstream_retries_total', help: 'Upstream operations retried after a transient failure', labelNames: ['operation'] as const, registers: [this.registry] });
  readonly upstreamUp = new Gauge({ name: 'davgate_upstream_up', help: '1 while the upstream answers, 0 while it is considered down', registers: [this.registry] });
  readonly staleServed = new Counter({ name: 'davgate_stale_served_total', help: 'Requests answered from cached data because the upstream could not be reached', registers: [this.registry] });
  readonly revalidations = new Counter({ name: 'davgate_node_revalidations_total', help: 'Node revalidations by result (same, changed, gone)', labelNames: ['result'] as const, registers: [this.registry] });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.upstreamUp.set(1);
  }
}
