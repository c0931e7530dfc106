// `--cluster`: one davgate vs three behind haproxy, over the same files, every instance with a
// cache smaller than the data set (the point of several instances: their caches add up).
//   1      – one gateway behind haproxy (config/haproxy/haproxy.cfg with one server)
//   3 hash – three gateways, one Redis, config/haproxy/haproxy.cfg (path on a consistent ring)
//   3 rr   – the same three with round robin: what affinity saves
// Per run: fresh processes and caches; a cold pass (every file once, `clients` in parallel),
// then a hot pass (the same again); MiB/s of each pass, and the upstream bytes of each pass summed
// over the gateways' davgate_upstream_read_bytes_total.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { startHaproxy, type Haproxy } from '../test/helpers/haproxy.js';
import { localHaproxyConfig } from '../test/helpers/haproxy-config.js';
import { startRedis } from '../test/helpers/redis.js';
import { send } from './http.js';
import { startDavgate } from './servers.js';
import { MiB, freePort, log, median } from './util.js';

export interface ClusterOptions { runs: number; files: number; fileBytes: number; clients: number; cacheBytes: number }

const SETUPS = [
  { id: '1', name: '1 instance', instances: 1, hash: true },
  { id: '3hash', name: '3 instances, consistent hash', instances: 3, hash: true },
  { id: '3rr', name: '3 instances, round robin', instances: 3, hash: false },
] as const;
type SetupId = (typeof SETUPS)[number]['id'];

interface Run { coldMiBs: number; hotMiBs: number; coldUpstreamMiB: number; hotUpstreamMiB: number; totalUpstreamMiB: number }

async function upstreamBytes(adminUrl: string): Promise<number> {
  const text = await (await fetch(adminUrl + 'metrics')).text();
  return [...text.matchAll(/^davgate_upstream_read_bytes_total(?:\{[^}]*\})? (\S+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Every file once, `clients` at a time on keep-alive connections; MiB/s. */
async function pass(lb: Haproxy, names: string[], o: ClusterOptions): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: o.clients });
  const limit = pLimit(o.clients);
  const t0 = process.hrtime.bigint();
  try {
    await Promise.all(names.map((n) => limit(async () => {
      const r = await send(lb.url + n, 'GET', {}, undefined, agent);
      if (r.status !== 200 || r.bytes !== o.fileBytes) throw new Error(`GET ${n}: HTTP ${r.status}, ${r.bytes} bytes`);
    })));
  } finally {
    agent.destroy();
  }
  return (names.length * o.fileBytes) / MiB / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function oneRun(setup: (typeof SETUPS)[number], data: string, names: string[], o: ClusterOptions): Promise<Run> {
  const redis = await startRedis();
  const gws: Array<Awaited<ReturnType<typeof startDavgate>>> = [];
  let lb: Haproxy | undefined;
  try {
    for (let i = 0; i < setup.instances; i++) {
      gws.push(await startDavgate(data, { name: `gw${i + 1}`, args: ['--ttl', '10m'], env: { DAVGATE_REDIS_URL: redis.url, DAVGATE_CACHE_MAX_BYTES: String(o.cacheBytes) } }));
    }
    const statsPort = await freePort();
    lb = await startHaproxy(gws, setup.hash ? (port) => localHaproxyConfig(port, statsPort, gws) : undefined);
    await new Promise((r) => setTimeout(r, 1500)); // health checks up
    const sum = async () => (await Promise.all(gws.map((g) => upstreamBytes(g.adminUrl)))).reduce((a, b) => a + b, 0);
    const coldMiBs = await pass(lb, names, o);
    const afterCold = await sum();
    const hotMiBs = await pass(lb, names, o);
    const afterHot = await sum();
    return { coldMiBs, hotMiBs, coldUpstreamMiB: afterCold / MiB, hotUpstreamMiB: (afterHot - afterCold) / MiB, totalUpstreamMiB: afterHot / MiB };
  } finally {
    await lb?.stop();
    for (const g of gws) await g.stop();
    await redis.stop();
  }
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
function cell(xs: number[]): string {
  return `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
}

function table(runs: Record<SetupId, Run[]>, o: ClusterOptions): string {
  const rows: Array<[string, keyof Run, string]> = [
    ['cold GET, MiB/s', 'coldMiBs', 'higher'], ['hot GET, MiB/s', 'hotMiBs', 'higher'],
    ['upstream MiB, cold pass', 'coldUpstreamMiB', 'lower'], ['upstream MiB, hot pass', 'hotUpstreamMiB', 'lower'],
    ['upstream MiB, total', 'totalUpstreamMiB', 'lower'],
  ];
  const med = (id: SetupId, k: keyof Run) => median(runs[id].map((r) => r[k]));
  const ratio = (a: number, b: number) => (b === 0 ? (a === 0 ? '1.00' : '∞') : (a / b).toFixed(2));
  const lines = [
    `| ${o.files} files × ${o.fileBytes / MiB} MiB, ${o.clients} clients, cache ${o.cacheBytes / MiB} MiB per instance | ${SETUPS.map((s) => s.name).join(' | ')} | 3 hash / 1 | 3 rr / 3 hash |`,
    `|---|${SETUPS.map(() => '---|').join('')}---|---|`,
  ];
  for (const [label, k] of rows) {
    lines.push(`| ${label} | ${SETUPS.map((s) => cell(runs[s.id].map((r) => r[k]))).join(' | ')} | ${ratio(med('3hash', k), med('1', k))} | ${ratio(med('3rr', k), med('3hash', k))} |`);
  }
  return lines.join('\n');
}

export async function runCluster(o: ClusterOptions): Promise<{ markdown: string; runs: Record<SetupId, Run[]> }> {
  const data = await mkdtemp(join(tmpdir(), 'davgate-bench-cluster-'));
  try {
    await mkdir(join(data, 'f'), { recursive: true });
    const names = Array.from({ length: o.files }, (_, i) => `f/${String(i).padStart(4, '0')}.bin`);
    log(`cluster: writing ${o.files} files of ${o.fileBytes / MiB} MiB`);
    for (const n of names) await writeFile(join(data, n), randomBytes(o.fileBytes));
    const runs = { '1': [], '3hash': [], '3rr': [] } as Record<SetupId, Run[]>;
    for (let i = 0; i < o.runs; i++) {
      for (const s of SETUPS) { // interleaved, so a slow moment of the machine hits every setup
        log(`cluster: ${s.name}, run ${i + 1}/${o.runs}`);
        const r = await oneRun(s, data, names, o);
        log(`  cold ${fmt(r.coldMiBs)} MiB/s, hot ${fmt(r.hotMiBs)} MiB/s, upstream ${fmt(r.coldUpstreamMiB)} + ${fmt(r.hotUpstreamMiB)} MiB`);
        runs[s.id].push(r);
      }
    }
    return { markdown: table(runs, o), runs };
  } finally {
    await rm(data, { recursive: true, force: true });
  }
}
