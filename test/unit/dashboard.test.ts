// The Grafana dashboard as Grafana 10/11 imports it: generated from scripts/grafana-dashboard.mjs,
// one data source variable used by every panel and query, unique ids, a 24-column grid without
// overlaps, units everywhere, `$__rate_interval` for every range; its provisioning names it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

const repo = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));
interface Panel { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; datasource?: { type: string; uid: string }; fieldConfig?: { defaults: { unit?: string } }; targets?: Array<{ expr: string; refId: string; datasource: { uid: string } }> }
const dash = JSON.parse(readFileSync(repo('config/grafana/dashboards/davgate.json'), 'utf8')) as { uid: string; schemaVersion: number; panels: Panel[]; templating: { list: Array<{ name: string; type: string; query: unknown }> } };

test('the committed dashboard is what its generator makes', () => {
  const r = spawnSync(process.execPath, [repo('scripts/grafana-dashboard.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('unique panel ids, a fixed uid and a schema Grafana 10/11 reads', () => {
  const ids = dash.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(dash.uid, 'davgate');
  assert.ok(dash.schemaVersion >= 36 && dash.schemaVersion <= 41);
});

test('a datasource variable of type prometheus, used by every panel and query', () => {
  const ds = dash.templating.list.find((v) => v.type === 'datasource');
  assert.equal(ds?.query, 'prometheus');
  for (const p of dash.panels.filter((x) => x.type !== 'row')) {
    assert.deepEqual(p.datasource, { type: 'prometheus', uid: `\${${ds.name}}` }, p.title);
    for (const t of p.targets ?? []) assert.equal(t.datasource.uid, `\${${ds.name}}`, p.title);
  }
});

test('panels sit on the 24-column grid without overlapping', () => {
  const cells = new Set<string>();
  for (const p of dash.panels) {
    const g = p.gridPos;
    assert.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24, `${p.title}: x ${g.x} w ${g.w}`);
    for (let x = g.x; x < g.x + g.w; x++) for (let y = g.y; y < g.y + g.h; y++) {
      assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`);
      cells.add(`${x},${y}`);
    }
  }
});

test('every panel has a unit and queries; ranges use $__rate_interval; rows cover the six areas', () => {
  for (const p of dash.panels.filter((x) => x.type !== 'row')) {
    assert.ok(p.fieldConfig?.defaults.unit, `${p.title} has no unit`);
    assert.ok(p.targets?.length, `${p.title} has no query`);
    for (const t of p.targets) assert.doesNotMatch(t.expr, /\[\d+[smhd]\]/, `${p.title}: fixed range in ${t.expr}`);
  }
  const rows = dash.panels.filter((p) => p.type === 'row').map((p) => p.title);
  assert.deepEqual(rows, ['Traffic', 'Cache', 'Upstream', 'WebDAV state', 'Several instances and store notifications', 'Process']);
});

test('the provisioning names the dashboard folder and a Prometheus data source', () => {
  const ds = parseYaml(readFileSync(repo('config/grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as { datasources: Array<{ type: string; uid: string; url: string }> };
  assert.equal(ds.datasources[0]?.type, 'prometheus');
  assert.match(ds.datasources[0].url, /^http:\/\/prometheus:9090$/);
  const prov = parseYaml(readFileSync(repo('config/grafana/provisioning/dashboards/davgate.yml'), 'utf8')) as { providers: Array<{ type: string; options: { path: string } }> };
  assert.equal(prov.providers[0]?.type, 'file');
  assert.equal(prov.providers[0]?.options.path, '/var/lib/grafana/dashboards');
});
