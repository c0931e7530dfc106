// `npm run bench -- --soak [--soak-minutes N]`: mixed load from 64 clients for N minutes (30 by
// default) over a cache smaller than the working set, against one davgate process started as the
// bin. Reported per minute and compared start to end: RSS, V8 heap, open fds, p99 latency; and
// the errors, which must be zero. Flat lines are the goal: a leak shows as a slope.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'node:http';
import { startDavgate } from './servers.js';
import { treeRssMB } from './measure.js';
import { log, percentile, sleep } from './util.js';

export interface SoakOptions { minutes: number; clients: number }

interface Sample { minute: number; rssMB: number; heapMB: number; fds: number; p99ms: number; requests: number; errors: number }

const FILES = 48;
const FILE_BYTES = 4 * 1024 * 1024; // 192 MiB of files over a 64 MiB cache: eviction all along

function metric(text: string, name: string): number {
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}

/** One request; resolves with its status (0 on a network error) after reading the body. */
function call(agent: Agent, base: URL, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: base.hostname, port: Number(base.port), method, path, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

export async function runSoak(o: SoakOptions): Promise<{ samples: Sample[]; markdown: string }> {
  const up = await mkdtemp(join(tmpdir(), 'davgate-soak-'));
  for (let i = 0; i < FILES; i++) await writeFile(join(up, `f${i}.bin`), Buffer.alloc(FILE_BYTES, i));
  for (let i = 0; i < 200; i++) await writeFile(join(up, `small${i}.txt`), `small ${i}\n`);
  const gw = await startDavgate(up, { args: ['--cache-max-bytes', '64MiB'] });
  const base = new URL(gw.url);
  const agent = new Agent({ keepAlive: true, maxSockets: o.clients });
  const latencies: number[] = [];
  let requests = 0;
  let errors = 0;
  let stop = false;
  const pick = (n: number) => Math.floor(Math.random() * n);
  const client = async (id: number) => {
    const put = Buffer.alloc(64 * 1024, id);
    while (!stop) {
      const r = Math.random();
      const t0 = performance.now();
      let status: number;
      let ok: (s: number) => boolean = (s) => s >= 200 && s < 300;
      if (r < 0.35) status = await call(agent, base, 'GET', `/f${pick(FILES)}.bin`);
      else if (r < 0.55) {
        const start = pick(FILE_BYTES - 4096);
        status = await call(agent, base, 'GET', `/f${pick(FILES)}.bin`, { range: `bytes=${start}-${start + 4095}` });
      }
      else if (r < 0.75) status = await call(agent, base, 'GET', `/small${pick(200)}.txt`);
      else if (r < 0.85) status = await call(agent, base, 'PROPFIND', '/', { depth: '1' });
      else if (r < 0.95) status = await call(agent, base, 'PUT', `/w-${id}-${pick(4)}.bin`, { 'content-length': String(put.length) }, put);
      else { status = await call(agent, base, 'GET', `/missing-${pick(1000)}`); ok = (s) => s === 404; }
      latencies.push(performance.now() - t0);
      requests++;
      if (!ok(status)) errors++;
    }
  };
  const samples: Sample[] = [];
  const clients = Array.from({ length: o.clients }, (_, i) => client(i));
  const t0 = Date.now();
  for (let minute = 1; minute <= o.minutes; minute++) {
    await sleep(Math.max(0, t0 + minute * 60_000 - Date.now()));
    const m = await (await fetch(gw.adminUrl + 'metrics')).text();
    const window = latencies.splice(0);
    samples.push({
      minute, rssMB: Math.round(treeRssMB(gw.pid)), heapMB: Math.round(metric(m, 'nodejs_heap_size_used_bytes') / 1e6),
      fds: metric(m, 'process_open_fds'), p99ms: Math.round(percentile(window, 99)), requests, errors,
    });
    const s = samples[samples.length - 1]!;
    log(`soak minute ${minute}/${o.minutes}: RSS ${s.rssMB} MB, heap ${s.heapMB} MB, fds ${s.fds}, p99 ${s.p99ms} ms, ${requests} requests, ${errors} errors`);
  }
  stop = true;
  await Promise.all(clients);
  agent.destroy();
  await gw.stop();
  await rm(up, { recursive: true, force: true });
  const first = samples[0]!;
  const last = samples[samples.length - 1]!;
  const markdown = [
    `| minute | RSS MB | heap MB | open fds | p99 ms | requests (total) | errors (total) |`,
    `|---|---|---|---|---|---|---|`,
    ...samples.map((s) => `| ${s.minute} | ${s.rssMB} | ${s.heapMB} | ${s.fds} | ${s.p99ms} | ${s.requests} | ${s.errors} |`),
    '',
    `Start → end: RSS ${first.rssMB} → ${last.rssMB} MB, heap ${first.heapMB} → ${last.heapMB} MB, fds ${first.fds} → ${last.fds}, ` +
      `p99 ${first.p99ms} → ${last.p99ms} ms; ${last.errors} errors in ${last.requests} requests.`,
  ].join('\n');
  return { samples, markdown };
}
