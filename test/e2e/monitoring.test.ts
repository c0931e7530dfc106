// The Grafana dashboard and the alert rules, proven on a real Prometheus scraping a real gateway:
// after WebDAV traffic of every kind, every panel expression and every alert expression must
// parse, evaluate and return data; every metric the dashboard names must be exported; the
// scrape config passes `promtool check config` and the alert rules their `promtool test rules`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { startGatewayProcess, sleep, type GatewayProcess } from '../helpers/gateway-process.js';
import { prometheusMissing, startPrometheus, type Prometheus } from '../helpers/prometheus.js';
import { comparedOperands, metricNames } from '../helpers/promql.js';

const repo = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));
const DASHBOARD = repo('config/grafana/dashboards/davgate.json');
const ALERTS = repo('config/prometheus/alerts.yml');

interface Panel { id: number; type: string; title: string; targets?: Array<{ expr: string }> }
interface Rule { alert: string; expr: string }

const panels = (JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] }).panels.filter((p) => p.type !== 'row');
const rules = (parseYaml(readFileSync(ALERTS, 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);

/** Dashboard variables as Grafana would fill them for this one gateway. */
const concrete = (expr: string) => expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', 'davgate').replaceAll('$instance', '.*');

const missing = prometheusMissing();

function promtool(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', cwd: repo('.') });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('monitoring: dashboard and alerts on a real Prometheus', { skip: missing }, () => {
  let gw: GatewayProcess;
  let prom: Prometheus;
  let exported = '';

  before(async () => {
    // A cache of 1 MiB in 64 KiB blocks: a 3 MiB file read twice evicts blocks read seconds ago.
    gw = await startGatewayProcess({ args: ['--cache-max-bytes', '1MiB', '--block-size', '64KiB', '--log-level', 'warn'] });
    const admin = new URL(gw.adminUrl);
    prom = await startPrometheus([admin.host], [ALERTS]);
    const u = (p: string) => gw.url + p.replace(/^\//, '');
    const call = async (method: string, path: string, init: RequestInit & { headers?: Record<string, string> } = {}) => {
      const res = await fetch(u(path), { method, ...init });
      await res.arrayBuffer();
      return res.status;
    };
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    assert.equal(await call('MKCOL', '/m/'), 201);
    assert.equal(await call('PUT', '/m/small.txt', { body: 'hello\n' }), 201);
    assert.equal(await call('PUT', '/m/big.bin', { body: big }), 201);
    for (let i = 0; i < 2; i++) assert.equal(await call('GET', '/m/big.bin'), 200); // cold, then over an evicting cache
    for (let i = 0; i < 3; i++) assert.equal(await call('GET', '/m/small.txt'), 200); // hot from the memory tier
    assert.equal(await call('GET', '/m/big.bin', { headers: { range: 'bytes=100-200' } }), 206);
    assert.equal(await call('PROPFIND', '/m/', { headers: { depth: '1' } }), 207);
    assert.equal(await call('GET', '/m/nope.txt'), 404);
    assert.equal(await call('COPY', '/m/small.txt', { headers: { destination: u('/m/copy.txt') } }), 201);
    assert.equal(await call('MOVE', '/m/copy.txt', { headers: { destination: u('/m/moved.txt') } }), 201);
    assert.equal(await call('DELETE', '/m/moved.txt'), 204);
    const lockBody = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
    assert.equal(await call('LOCK', '/m/small.txt', { headers: { 'content-type': 'application/xml', timeout: 'Second-600' }, body: lockBody }), 200);
    exported = await (await fetch(gw.adminUrl + 'metrics')).text();
    // Wait until Prometheus has scraped the traffic a few times (rates need two samples).
    const deadline = Date.now() + 30_000;
    while ((await prom.query('davgate_webdav_locks > 0')).length === 0) {
      if (Date.now() > deadline) throw new Error(`no scrape with the lock within 30 s\n${prom.log()}`);
      await sleep(500);
    }
    await sleep(3000);
  });

  after(async () => {
    await prom?.stop();
    await gw?.stop();
  });

  test('the traffic left its traces: evictions of recently read blocks, a lock, a 404', async () => {
    assert.ok((await prom.query('davgate_cache_evicted_recently_used_blocks_total > 0')).length, 'no recently used block was evicted');
    assert.ok((await prom.query('davgate_requests_total{status="404"} > 0')).length);
    assert.equal((await prom.query('davgate_webdav_locks'))[0]?.value[1], '1');
    assert.equal((await prom.query('davgate_cache_limit_bytes'))[0]?.value[1], String(1024 * 1024));
  });

  for (const panel of panels) {
    test(`panel ${panel.id} "${panel.title}": every query evaluates and returns data`, async () => {
      assert.ok(panel.targets?.length, 'panel has no query');
      for (const t of panel.targets) {
        const result = await prom.query(concrete(t.expr));
        assert.ok(result.length > 0, `no data for ${t.expr}`);
      }
    });
  }

  test('every metric the dashboard names is exported by the gateway', () => {
    const names = new Set(panels.flatMap((p) => p.targets ?? []).flatMap((t) => metricNames(concrete(t.expr))));
    assert.ok(names.size > 20, `only ${names.size} metric names found`);
    const absent = [...names].filter((n) => !new RegExp(`^${n}[{ ]`, 'm').test(exported));
    assert.deepEqual(absent, []);
  });

  for (const rule of rules) {
    test(`alert ${rule.alert}: the expression evaluates, and what it compares has data`, async () => {
      await prom.query(rule.expr); // parses and evaluates (empty while it does not fire)
      const operands = comparedOperands(rule.expr);
      assert.ok(operands.length > 0);
      for (const o of operands) assert.ok((await prom.query(o)).length > 0, `no data for ${o}`);
      for (const n of metricNames(rule.expr)) if (n !== 'up') assert.match(exported, new RegExp(`^${n}[{ ]`, 'm'), `${n} is not exported`);
    });
  }

  test('Prometheus loaded and evaluates every alert rule without error', async () => {
    const data = await prom.api<{ groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> }>('/api/v1/rules');
    const loaded = data.groups.flatMap((g) => g.rules);
    assert.deepEqual(loaded.map((r) => r.name).sort(), rules.map((r) => r.alert).sort());
    for (const r of loaded) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
  });

  test('the gateway is up and no alert fires on a healthy gateway', async () => {
    assert.equal((await prom.query('up{job="davgate"}'))[0]?.value[1], '1');
    const firing = await prom.query('ALERTS{alertstate="firing"}');
    assert.deepEqual(firing.map((a) => a.metric.alertname), []);
  });
});

describe('promtool', { skip: missing }, () => {
  test('config/prometheus.yml passes promtool check config (with its rule file)', () => {
    const r = promtool('check', 'config', 'config/prometheus.yml');
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS: \d+ rules found/);
  });

  test('the alert rules pass their unit tests, one firing and one quiet case per rule', () => {
    const r = promtool('test', 'rules', 'config/prometheus/alerts.test.yml');
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS/);
    const tests = readFileSync(repo('config/prometheus/alerts.test.yml'), 'utf8');
    for (const rule of rules) assert.match(tests, new RegExp(`alertname: ${rule.alert}\\n\\s+exp_alerts: \\[\\]`), `${rule.alert} has no not-firing case`);
  });
});
