// The metrics registry: labelled counters exported at zero before their first event, build
// info, and no label that could carry a path or a user name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../src/metrics.js';

test('every labelled counter and histogram has zero samples before anything happened', async () => {
  const m = new Metrics({ defaultMetrics: false, version: '9.9.9' });
  const all = await m.registry.getMetricsAsJSON();
  const labelled = all.filter((x) => (x.type as unknown as string) === 'counter' || (x.type as unknown as string) === 'histogram');
  assert.ok(labelled.length > 15);
  // The exact status code is open-ended; its class (davgate_request_duration_seconds) starts at zero.
  for (const metric of labelled) if (metric.name !== 'davgate_requests_total') assert.ok(metric.values.length > 0, `${metric.name} has no series`);
  const text = await m.registry.metrics();
  assert.match(text, /^davgate_client_aborts_total\{method="GET"\} 0$/m);
  assert.match(text, /^davgate_request_duration_seconds_count\{method="PUT",status_class="5xx"\} 0$/m);
  assert.match(text, /^davgate_upstream_requests_total\{operation="read",result="error"\} 0$/m);
  assert.match(text, /^davgate_upstream_breaker_opens_total 0$/m);
  assert.match(text, /^davgate_build_info\{version="9\.9\.9",node="[\d.]+"\} 1$/m);
});

test('block lookups: joins are misses counted apart, read-ahead is not a lookup', async () => {
  const m = new Metrics({ defaultMetrics: false });
  for (const r of ['hit', 'hit', 'miss', 'join', 'prefetch', 'prefetch'] as const) m.blockLookup(r);
  const text = await m.registry.metrics();
  assert.match(text, /^davgate_cache_block_requests_total\{result="hit"\} 2$/m);
  assert.match(text, /^davgate_cache_block_requests_total\{result="miss"\} 2$/m);
  assert.match(text, /^davgate_cache_singleflight_joins_total 1$/m);
  assert.match(text, /^davgate_cache_readahead_blocks_total 2$/m);
  assert.doesNotMatch(text, /result="(prefetch|join)"/);
});

test('requests by status class; gauges read from their sources at scrape time', async () => {
  const m = new Metrics({ defaultMetrics: false });
  m.request('GET', 503, 0.2);
  m.request('GET', 206, 0.01);
  let locks = 3;
  m.observe({ activeLocks: () => locks, breakerState: () => 2 });
  let text = await m.registry.metrics();
  assert.match(text, /^davgate_request_duration_seconds_count\{method="GET",status_class="5xx"\} 1$/m);
  assert.match(text, /^davgate_requests_total\{method="GET",status="206"\} 1$/m);
  assert.match(text, /^davgate_webdav_locks 3$/m);
  assert.match(text, /^davgate_upstream_breaker_state 2$/m);
  locks = 0;
  text = await m.registry.metrics();
  assert.match(text, /^davgate_webdav_locks 0$/m);
});

test('only low-cardinality label names', async () => {
  const allowed = new Set(['method', 'status', 'status_class', 'operation', 'result', 'source', 'reason', 'version', 'node', 'le', 'direction']);
  const m = new Metrics({ defaultMetrics: false });
  for (const metric of await m.registry.getMetricsAsJSON()) {
    for (const v of metric.values) for (const k of Object.keys(v.labels)) assert.ok(allowed.has(k), `${metric.name} has label ${k}`);
  }
});
