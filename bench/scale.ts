// `--scale`: how each cost grows.
//   - PROPFIND depth 1 at 1k / 10k / 100k entries, cold (fresh process, empty cache) and hot,
//     davgate and rclone over the dir upstream, nginx and Apache direct, with each server's
//     peak RSS during the hot PROPFIND (a streamed answer keeps it flat);
//   - a cache holding 1M blocks (100k with --quick): start-up after a crash and after a clean
//     stop, getnode over HTTP (scale-cache.ts);
//   - getnode in process with 1k ... 1M node records (scale-nodes.ts);
//   - 1,000 idle keep-alive clients: RSS of each server (scale-idle.ts);
//   - 64 concurrent clients: wrk -t1 -c64 on the 4 KiB file, req/s and latency percentiles.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { linkInto, writeManyFiles } from './dataset.js';
import { propfindEntries, propfindSeconds } from './http.js';
import { peakRssDuring, wrk, type WrkResult } from './measure.js';
import { cacheStartMarkdown, cacheStartScale } from './scale-cache.js';
import { idleClientsRss, type IdleRow } from './scale-idle.js';
import { getnodeScale, type GetnodeRow } from './scale-nodes.js';
import { startApache, startDavgate, startNginx, startRclone, type DavBaseline, type Server } from './servers.js';
import { errMsg, log, median } from './util.js';

const SIZES = [1_000, 10_000, 100_000];
const IDLE_CLIENTS = 1000;

const summary = (xs: number[]) => ({ runs: xs, median: median(xs) });

export async function runScale(o: { runs: number; quick: boolean }): Promise<Record<string, unknown> & { markdown: string }> {
  const nginx = await startNginx();
  log(`scale: writing ${SIZES.join(' / ')} entries and small.bin under ${nginx.root}`);
  await writeFile(join(nginx.root, 'small.bin'), randomBytes(4096));
  for (const n of SIZES) await writeManyFiles(join(nginx.root, `d${n}`), n);
  let apache: DavBaseline | undefined;
  try {
    apache = await startApache();
    await linkInto(nginx.root, apache.root, process.getuid?.() === 0 ? 'www-data:www-data' : undefined);
  } catch (e) { log(`apache: ${errMsg(e)}`); }
  const davgate = await startDavgate(nginx.root);
  const rclone = await startRclone(nginx.root);
  const hotServers: Array<[string, Server]> = [['davgate', davgate], ['rclone', rclone], ['nginx', nginx], ...(apache ? [['apache', apache] as [string, Server]] : [])];

  // ---- PROPFIND growth ----
  const propfind: unknown[] = [];
  for (const n of SIZES) {
    const cold: Record<string, number[]> = {};
    for (let i = 0; i < o.runs; i++) {
      for (const col of ['davgate', 'rclone'] as const) {
        log(`scale: PROPFIND ${n} cold: ${col} run ${i + 1}/${o.runs}`);
        const srv = col === 'davgate' ? await startDavgate(nginx.root) : await startRclone(nginx.root);
        try { (cold[col] ??= []).push(await propfindSeconds(srv.url + `d${n}/`)); } finally { await srv.stop(); }
      }
    }
    const hot: Record<string, number[]> = {};
    const peakRss: Record<string, number[]> = {};
    for (const [col, srv] of hotServers) {
      log(`scale: PROPFIND ${n} hot: ${col}`);
      const entries = await propfindEntries(srv.url + `d${n}/`);
      if (entries !== n + 1) throw new Error(`${col}: PROPFIND d${n}/ lists ${entries - 1} entries, expected ${n}`);
      for (let i = 0; i < o.runs; i++) {
        const { peakMB, result } = await peakRssDuring(srv.pid, () => propfindSeconds(srv.url + `d${n}/`), 10);
        (hot[col] ??= []).push(result);
        (peakRss[col] ??= []).push(peakMB);
      }
    }
    const med = (xs: number[] | undefined) => (xs ? median(xs) : NaN);
    propfind.push({
      entries: n,
      coldSeconds: Object.fromEntries(Object.entries(cold).map(([k, v]) => [k, summary(v)])),
      hotSeconds: Object.fromEntries(Object.entries(hot).map(([k, v]) => [k, summary(v)])),
      hotPeakRssMB: Object.fromEntries(Object.entries(peakRss).map(([k, v]) => [k, summary(v)])),
      hotMicrosPerEntry: Object.fromEntries(Object.entries(hot).map(([k, v]) => [k, (med(v) / n) * 1e6])),
    });
  }

  // ---- a large cache: start-up, getnode over HTTP ----
  const blocks = o.quick ? 100_000 : 1_000_000;
  const cacheStart = await cacheStartScale(nginx.root, join(nginx.root, '..'), blocks, o.runs);

  // ---- getnode in process, 1k ... 1M records ----
  const getnode = await getnodeScale(o.quick ? [1_000, 10_000, 100_000] : [1_000, 10_000, 100_000, 1_000_000], o.quick ? 1 : 3);

  // ---- idle keep-alive clients ----
  const idle: Record<string, IdleRow | string> = {};
  const cfg = join(nginx.root, '..', 'idle.yaml');
  await writeFile(cfg, `webdav:\n  maxConnectionsPerClient: ${IDLE_CLIENTS * 2}\n`);
  const idleServers: Array<[string, () => Promise<Server>]> = [
    ['davgate', () => startDavgate(nginx.root, { args: ['-c', cfg] })], ['rclone', () => startRclone(nginx.root)],
    ['nginx', async () => nginx], ...(apache ? [['apache', async () => apache] as [string, () => Promise<Server>]] : []),
  ];
  for (const [col, start] of idleServers) {
    log(`scale: ${IDLE_CLIENTS} idle keep-alive clients: ${col}`);
    const srv = await start();
    try { idle[col] = await idleClientsRss(srv.pid, srv.url, IDLE_CLIENTS); } catch (e) { idle[col] = errMsg(e); } finally {
      if (srv !== nginx && srv !== apache) await srv.stop();
    }
  }

  // ---- 64 concurrent clients ----
  const seconds = o.quick ? 2 : 8;
  const concurrency: Record<string, { runs: WrkResult[]; medianReqPerSec: number; medianP50Ms: number; medianP99Ms: number }> = {};
  for (const [, srv] of hotServers) await wrk(srv.url + 'small.bin', 64, 1); // warm-up
  for (let i = 0; i < o.runs; i++) {
    for (const [col, srv] of hotServers) {
      log(`scale: wrk -t1 -c64 ${seconds} s: ${col} run ${i + 1}/${o.runs}`);
      const r = await wrk(srv.url + 'small.bin', 64, seconds);
      const c = (concurrency[col] ??= { runs: [], medianReqPerSec: NaN, medianP50Ms: NaN, medianP99Ms: NaN });
      c.runs.push(r);
    }
  }
  for (const c of Object.values(concurrency)) {
    c.medianReqPerSec = median(c.runs.map((r) => r.reqPerSec));
    c.medianP50Ms = median(c.runs.map((r) => r.latencyMs?.p50 ?? NaN));
    c.medianP99Ms = median(c.runs.map((r) => r.latencyMs?.p99 ?? NaN));
  }
  const result: ScaleResult = {
    runs: o.runs, propfind, cacheStart: { blocks, ...cacheStart }, getnode,
    idleClients: { clients: IDLE_CLIENTS, ...idle }, concurrency64: { wrk: `wrk -t1 -c64 -d${seconds}s --latency`, ...concurrency },
  };
  return { ...result, markdown: scaleMarkdown(result) };
}

interface ScaleResult {
  runs: number;
  propfind: unknown[];
  cacheStart: { blocks: number } & Record<string, unknown>;
  getnode: GetnodeRow[];
  idleClients: Record<string, unknown>;
  concurrency64: Record<string, unknown>;
}

const f = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) : 'n/a');

function scaleMarkdown(r: ScaleResult): string {
  const cols = ['davgate', 'rclone', 'nginx', 'apache'];
  const lines = ['| PROPFIND entries | davgate cold s | rclone cold s | davgate hot s | rclone hot s | nginx s | apache s | peak RSS MB, hot: davgate / rclone / nginx / apache |', '|--:|--:|--:|--:|--:|--:|--:|---|'];
  for (const p of r.propfind as Array<{ entries: number; coldSeconds: Record<string, { median: number }>; hotSeconds: Record<string, { median: number }>; hotPeakRssMB: Record<string, { median: number }> }>) {
    const rss = cols.map((c) => f(p.hotPeakRssMB[c]?.median)).join(' / ');
    lines.push(`| ${p.entries} | ${f(p.coldSeconds.davgate?.median)} | ${f(p.coldSeconds.rclone?.median)} | ${f(p.hotSeconds.davgate?.median)} | ${f(p.hotSeconds.rclone?.median)} | ${f(p.hotSeconds.nginx?.median)} | ${f(p.hotSeconds.apache?.median)} | ${rss} |`);
  }
  lines.push('', ...cacheStartMarkdown(r.cacheStart.blocks, r.cacheStart as unknown as Record<string, { medians: Record<string, number> }>, f));
  lines.push('', '| getnode in process, records held | listing them, s | p50 µs | p99 µs | mean µs | heap per record, bytes |', '|--:|--:|--:|--:|--:|--:|');
  for (const g of r.getnode) lines.push(`| ${g.nodes} | ${f(g.listSeconds)} | ${f(g.p50Micros)} | ${f(g.p99Micros)} | ${f(g.meanMicros)} | ${f(g.heapBytesPerNode)} |`);
  lines.push('', `| ${String(r.idleClients.clients)} idle keep-alive clients | RSS before MB | RSS with them MB | KiB per connection | still open |`, '|---|--:|--:|--:|--:|');
  for (const c of cols) {
    const v = r.idleClients[c];
    if (typeof v === 'string') lines.push(`| ${c} | n/a: ${v} | | | |`);
    else if (v) { const i = v as IdleRow; lines.push(`| ${c} | ${f(i.rssBeforeMB)} | ${f(i.rssIdleMB)} | ${f(i.kibPerConnection)} | ${i.stillOpen} |`); }
  }
  lines.push('', '| 64 clients, 4 KiB GET hot | req/s | p50 ms | p99 ms |', '|---|--:|--:|--:|');
  for (const [k, v] of Object.entries(r.concurrency64)) {
    if (typeof v !== 'object' || v === null) continue;
    const c = v as { medianReqPerSec: number; medianP50Ms: number; medianP99Ms: number };
    lines.push(`| ${k} | ${f(c.medianReqPerSec)} | ${f(c.medianP50Ms)} | ${f(c.medianP99Ms)} |`);
  }
  return lines.join('\n');
}
