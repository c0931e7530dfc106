#!/usr/bin/env node
// Writes config/grafana/dashboards/davgate.json: the panels are listed here once, the JSON
// layout Grafana wants (ids, grid positions, datasource references) is derived.
//   node scripts/grafana-dashboard.mjs          write the file
//   node scripts/grafana-dashboard.mjs --check  exit 1 when the file differs (the tests run this)
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const OUT = fileURLToPath(new URL('../config/grafana/dashboards/davgate.json', import.meta.url));
const DS = { type: 'prometheus', uid: '${datasource}' };
const S = 'job=~"$job", instance=~"$instance"';
const R = '$__rate_interval';

/** A panel: title, unit, [expr, legend] pairs; `kind` stat|timeseries; width in grid columns. */
const p = (title, unit, targets, opts = {}) => ({ title, unit, targets, kind: opts.kind ?? 'timeseries', w: opts.w ?? 8, description: opts.description, mappings: opts.mappings, max: opts.max });

const rows = [
  ['Traffic', [
    p('Requests by method and status', 'reqps', [[`sum by (method, status) (rate(davgate_requests_total{${S}}[${R}]))`, '{{method}} {{status}}']]),
    p('Request latency', 's', [0.5, 0.95, 0.99].map((q) => [`histogram_quantile(${q}, sum by (le) (rate(davgate_request_duration_seconds_bucket{${S}}[${R}])))`, `p${q * 100}`]),
      { description: 'Until the last byte is sent: large downloads are long by nature.' }),
    p('Error ratio', 'percentunit', [
      [`sum(rate(davgate_request_duration_seconds_count{${S}, status_class="5xx"}[${R}])) / clamp_min(sum(rate(davgate_request_duration_seconds_count{${S}}[${R}])), 1e-9)`, '5xx'],
      [`sum(rate(davgate_request_duration_seconds_count{${S}, status_class="4xx"}[${R}])) / clamp_min(sum(rate(davgate_request_duration_seconds_count{${S}}[${R}])), 1e-9)`, '4xx'],
    ], { max: 1 }),
    p('Requests in flight', 'short', [[`sum(davgate_requests_in_flight{${S}})`, 'in flight']]),
    p('Client aborts', 'reqps', [[`sum by (method) (rate(davgate_client_aborts_total{${S}}[${R}]))`, '{{method}}']],
      { description: 'Clients that went away before the answer was complete (not an error of the gateway).' }),
    p('Internal errors (bugs)', 'short', [[`sum(increase(davgate_internal_errors_total{${S}}[${R}]))`, '500s']],
      { description: 'Requests answered 500 by an unexpected error: each has a stack in the log.' }),
    p('Connections', 'short', [[`sum(davgate_connections_open{${S}})`, 'open'], [`sum(increase(davgate_connections_refused_total{${S}}[${R}]))`, 'refused (per-client cap)']]),
    p('Failed logins', 'short', [[`sum by (reason) (increase(davgate_auth_failures_total{${S}}[${R}]))`, '{{reason}}']],
      { description: 'bad_credentials: a wrong name or password; rate_limited: refused with 429 after too many.' }),
  ]],
  ['Cache', [
    p('Byte hit ratio', 'percentunit', [[`sum(rate(davgate_served_bytes_total{${S}, source="cache"}[${R}])) / clamp_min(sum(rate(davgate_served_bytes_total{${S}}[${R}])), 1e-9)`, 'bytes from cache']], { max: 1 }),
    p('Block hit ratio', 'percentunit', [[`sum(rate(davgate_cache_block_requests_total{${S}, result="hit"}[${R}])) / clamp_min(sum(rate(davgate_cache_block_requests_total{${S}}[${R}])), 1e-9)`, 'block hits']], { max: 1 }),
    p('Cache fill vs limit', 'bytes', [[`sum(davgate_cache_bytes{${S}})`, 'cached'], [`sum(davgate_cache_limit_bytes{${S}})`, 'limit']]),
    p('Cache fill', 'percentunit', [[`sum(davgate_cache_bytes{${S}}) / sum(davgate_cache_limit_bytes{${S}})`, 'fill']], { kind: 'stat', w: 4, max: 1 }),
    p('Cache disk free', 'percentunit', [[`min(davgate_cache_disk_free_bytes{${S}} / davgate_cache_disk_size_bytes{${S}})`, 'free']], { kind: 'stat', w: 4, max: 1 }),
    p('Evictions', 'Bps', [[`sum(rate(davgate_cache_evicted_bytes_total{${S}}[${R}]))`, 'evicted']]),
    p('Evicted blocks read in the minute before (thrashing)', 'ops', [[`sum(rate(davgate_cache_evicted_recently_used_blocks_total{${S}}[${R}]))`, 'recently used'], [`sum(rate(davgate_cache_evicted_blocks_total{${S}}[${R}]))`, 'all evicted']]),
    p('Memory tier', 'bytes', [[`sum(davgate_cache_memory_tier_bytes{${S}})`, 'held']]),
    p('Block lookups', 'ops', [
      [`sum by (result) (rate(davgate_cache_block_requests_total{${S}}[${R}]))`, '{{result}}'],
      [`sum(rate(davgate_cache_memory_hits_total{${S}}[${R}]))`, 'memory tier hits'],
      [`sum(rate(davgate_cache_readahead_blocks_total{${S}}[${R}]))`, 'read ahead'],
      [`sum(rate(davgate_cache_singleflight_joins_total{${S}}[${R}]))`, 'joined a fetch'],
    ]),
    p('Corrupt blocks dropped', 'short', [[`sum(increase(davgate_cache_corrupt_blocks_total{${S}}[${R}]))`, 'corrupt']], { w: 8 }),
    p('Cache disk bypassed', 'short', [[`max(davgate_cache_disk_bypassed{${S}})`, 'bypassed']], {
      kind: 'stat', w: 4, description: 'The cache disk failed writes repeatedly: blocks are served from the upstream without being kept.',
      mappings: [{ type: 'value', options: { 0: { text: 'no', color: 'green' }, 1: { text: 'bypassed', color: 'red' } } }],
    }),
  ]],
  ['Upstream', [
    p('Upstream latency p95 by operation', 's', [[`histogram_quantile(0.95, sum by (le, operation) (rate(davgate_upstream_request_duration_seconds_bucket{${S}}[${R}])))`, '{{operation}}']]),
    p('Upstream operations by result', 'ops', [[`sum by (operation, result) (rate(davgate_upstream_requests_total{${S}}[${R}]))`, '{{operation}} {{result}}']]),
    p('Upstream error ratio', 'percentunit', [[`sum(rate(davgate_upstream_requests_total{${S}, result="error"}[${R}])) / clamp_min(sum(rate(davgate_upstream_requests_total{${S}}[${R}])), 1e-9)`, 'errors']], { max: 1 }),
    p('Upstream retries', 'ops', [[`sum by (operation) (rate(davgate_upstream_retries_total{${S}}[${R}]))`, '{{operation}}']]),
    p('Circuit breaker', 'short', [[`max(davgate_upstream_breaker_state{${S}})`, 'state']], {
      kind: 'stat', w: 4,
      mappings: [{ type: 'value', options: { 0: { text: 'closed', color: 'green' }, 1: { text: 'half-open', color: 'orange' }, 2: { text: 'open', color: 'red' } } }],
    }),
    p('Breaker openings', 'short', [[`sum(increase(davgate_upstream_breaker_opens_total{${S}}[${R}]))`, 'opened']], { kind: 'stat', w: 4 }),
    p('Upstream read throughput', 'Bps', [[`sum(rate(davgate_upstream_read_bytes_total{${S}}[${R}]))`, 'read']]),
    p('Stale answers (upstream unreachable)', 'reqps', [[`sum(rate(davgate_stale_served_total{${S}}[${R}]))`, 'stale']]),
  ]],
  ['WebDAV state', [
    p('Active locks', 'short', [[`sum(davgate_webdav_locks{${S}})`, 'locks']]),
    p('Node records in memory', 'short', [[`sum(davgate_cache_nodes{${S}})`, 'nodes']]),
    p('Revalidations', 'ops', [[`sum by (result) (rate(davgate_node_revalidations_total{${S}}[${R}]))`, '{{result}}']]),
  ]],
  ['Several instances and store notifications', [
    p('Shared state (Redis) reachable', 'short', [[`min(davgate_shared_state_up{${S}})`, 'up']], {
      kind: 'stat', w: 4, description: 'Locks, dead properties and the invalidation bus (redis.url). Always 1 without redis.url.',
      mappings: [{ type: 'value', options: { 0: { text: 'down', color: 'red' }, 1: { text: 'up', color: 'green' } } }],
    }),
    p('Invalidation bus messages', 'ops', [[`sum by (direction) (rate(davgate_bus_messages_total{${S}}[${R}]))`, '{{direction}}']],
      { description: 'Changes announced to the other gateways (sent) and heard from them (received).' }),
    p('Bus reconnections and unacknowledged changes', 'short', [
      [`sum(increase(davgate_bus_missed_total{${S}}[${R}]))`, 'reconnections (records dropped)'],
      [`sum(increase(davgate_bus_ack_timeouts_total{${S}}[${R}]))`, 'not acknowledged in redis.ackTimeout'],
    ], { w: 8, description: 'A write waits for every other gateway to drop what it changed; a peer that does not answer within redis.ackTimeout delays writes by that much.' }),
    p('Store notifications', 'ops', [[`sum by (result) (rate(davgate_notifications_total{${S}}[${R}]))`, '{{result}}']],
      { description: 'S3 bucket notifications on POST /notify/s3: accepted, duplicate (redelivered), ignored (another bucket), rejected (secret, body).' }),
  ]],
  ['Process', [
    p('Resident memory', 'bytes', [[`process_resident_memory_bytes{${S}}`, '{{instance}}']]),
    p('Heap', 'bytes', [[`nodejs_heap_size_used_bytes{${S}}`, 'used {{instance}}'], [`nodejs_heap_size_total_bytes{${S}}`, 'total {{instance}}']]),
    p('Event-loop lag', 's', [[`nodejs_eventloop_lag_p99_seconds{${S}}`, 'p99 {{instance}}'], [`nodejs_eventloop_lag_seconds{${S}}`, 'last {{instance}}']]),
    p('Open file descriptors', 'short', [[`process_open_fds{${S}}`, 'open {{instance}}'], [`process_max_fds{${S}}`, 'max {{instance}}']]),
    p('CPU', 'percentunit', [[`rate(process_cpu_seconds_total{${S}}[${R}])`, '{{instance}}']]),
    p('Version', 'short', [[`davgate_build_info{${S}}`, '{{version}} (Node.js {{node}})']], { kind: 'stat', w: 8 }),
  ]],
];

function panel(def, id, gridPos) {
  const fieldConfig = { defaults: { unit: def.unit, ...(def.max !== undefined ? { min: 0, max: def.max } : {}), ...(def.mappings ? { mappings: def.mappings } : {}) }, overrides: [] };
  const out = {
    id, type: def.kind, title: def.title, datasource: DS, gridPos, fieldConfig,
    targets: def.targets.map(([expr, legendFormat], i) => ({ refId: String.fromCharCode(65 + i), datasource: DS, expr, legendFormat, range: true })),
  };
  if (def.description) out.description = def.description;
  out.options = def.kind === 'stat'
    ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'none', textMode: def.title === 'Version' ? 'name' : 'auto' }
    : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } };
  return out;
}

function build() {
  const panels = [];
  let id = 1;
  let y = 0;
  for (const [title, defs] of rows) {
    panels.push({ id: id++, type: 'row', title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    for (const def of defs) {
      if (x + def.w > 24) { x = 0; y += 8; }
      panels.push(panel(def, id++, { h: 8, w: def.w, x, y }));
      x += def.w;
    }
    y += 8;
  }
  const queryVar = (name, label, query) => ({
    name, label, type: 'query', datasource: DS, query: { query, refId: name }, definition: query,
    refresh: 2, includeAll: true, multi: true, allValue: '.*', current: { selected: true, text: ['All'], value: ['$__all'] }, options: [], sort: 1,
  });
  return {
    uid: 'davgate', title: 'davgate', description: 'davgate caching WebDAV gateway: traffic, cache, upstream, WebDAV state, process',
    tags: ['davgate', 'webdav'], editable: true, graphTooltip: 1, schemaVersion: 39, version: 1, refresh: '30s',
    time: { from: 'now-1h', to: 'now' }, timezone: 'browser', annotations: { list: [] }, links: [],
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1, regex: '', options: [] },
        queryVar('job', 'Job', 'label_values(davgate_build_info, job)'),
        queryVar('instance', 'Instance', 'label_values(davgate_build_info{job=~"$job"}, instance)'),
      ],
    },
    panels,
  };
}

const text = JSON.stringify(build(), null, 2) + '\n';
if (process.argv.includes('--check')) {
  let current = '';
  try { current = readFileSync(OUT, 'utf8'); } catch { /* missing */ }
  if (current !== text) {
    console.error(`${OUT} is not what scripts/grafana-dashboard.mjs makes: run it and commit the result`);
    process.exit(1);
  }
} else {
  writeFileSync(OUT, text);
  console.log(`wrote ${OUT}`);
}
