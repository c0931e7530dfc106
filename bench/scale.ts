// `--scale`: how each cost grows.
//   - PROPFIND depth 1 at 1k / 10k / 100k entries, cold (fresh process, empty cache) and hot,
//     davgate and rclone over the dir upstream, nginx and Apache direct;
//   - a cache holding 100k blocks: davgate's start-up time until it listens (against an empty
//     cache) and getnode latency (HEAD of a file: the first one stats upstream, then hot);
//   - 64 concurrent clients: wrk -t1 -c64 on the 4 KiB file, req/s and latency percentiles.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { crc32 } from '@node-rs/crc32';
import pLimit from 'p-limit';
import { linkInto, writeManyFiles } from './dataset.js';
import { expect, propfindEntries, propfindSeconds, send } from './http.js';
import { wrk, type WrkResult } from './measure.js';
import { startApache, startDavgate, startNginx, startRclone, type DavBaseline, type Server } from './servers.js';
import { errMsg, log, median, percentile } from './util.js';

const SIZES = [1_000, 10_000, 100_000];
const BLOCKS = 100_000;
const BLOCKS_PER_KEY = 10;
const BLOCK_BYTES = 1024;

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

/** A cache dir with `count` valid block files: <root>/blocks/<k0k1>/<key>/<ver>-<idx>-<crc32>. */
async function fillCache(root: string, count: number): Promise<void> {
  const limit = pLimit(64);
  const jobs: Array<Promise<void>> = [];
  for (let k = 0; k * BLOCKS_PER_KEY < count; k++) {
    const key = hex(20);
    const version = hex(8);
    const dir = join(root, 'blocks', key.slice(0, 2), key);
    jobs.push(limit(async () => {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      for (let i = 0; i < BLOCKS_PER_KEY && k * BLOCKS_PER_KEY + i < count; i++) {
        const data = randomBytes(BLOCK_BYTES);
        await writeFile(join(dir, `${version}-${i.toString(16)}-${crc32(data).toString(16).padStart(8, '0')}`), data, { mode: 0o600 });
      }
    }));
  }
  await Promise.all(jobs);
}

const summary = (xs: number[]) => ({ runs: xs, median: median(xs) });

async function blockCount(adminUrl: string): Promise<number> {
  const text = await (await fetch(adminUrl + 'metrics')).text();
  return Number(/^davgate_cache_blocks (\d+)/m.exec(text)?.[1] ?? NaN);
}

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
    for (const [col, srv] of hotServers) {
      log(`scale: PROPFIND ${n} hot: ${col}`);
      const entries = await propfindEntries(srv.url + `d${n}/`);
      if (entries !== n + 1) throw new Error(`${col}: PROPFIND d${n}/ lists ${entries - 1} entries, expected ${n}`);
      for (let i = 0; i < o.runs; i++) (hot[col] ??= []).push(await propfindSeconds(srv.url + `d${n}/`));
    }
    const med = (xs: number[] | undefined) => (xs ? median(xs) : NaN);
    propfind.push({
      entries: n,
      coldSeconds: Object.fromEntries(Object.entries(cold).map(([k, v]) => [k, summary(v)])),
      hotSeconds: Object.fromEntries(Object.entries(hot).map(([k, v]) => [k, summary(v)])),
      hotMicrosPerEntry: Object.fromEntries(Object.entries(hot).map(([k, v]) => [k, (med(v) / n) * 1e6])),
    });
  }

  // ---- start-up and getnode latency with 100k cached blocks ----
  const cacheDir = join(nginx.root, '..', 'cache100k');
  log(`scale: writing ${BLOCKS} block files into ${cacheDir}`);
  await fillCache(cacheDir, BLOCKS);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const cacheRuns: Record<string, { startSeconds: number[]; firstHeadMs: number[]; hotHeadP50Ms: number[]; hotHeadP99Ms: number[]; blocks: number[] }> = {};
  for (let i = 0; i < o.runs; i++) {
    for (const which of ['empty', '100k'] as const) {
      log(`scale: davgate start-up with ${which} cache, run ${i + 1}/${o.runs}`);
      const t0 = performance.now();
      const srv = await startDavgate(nginx.root, which === '100k' ? { cache: cacheDir } : {});
      const startSeconds = (performance.now() - t0) / 1000;
      try {
        const r = (cacheRuns[which] ??= { startSeconds: [], firstHeadMs: [], hotHeadP50Ms: [], hotHeadP99Ms: [], blocks: [] });
        r.startSeconds.push(startSeconds);
        r.blocks.push(await blockCount(srv.adminUrl));
        r.firstHeadMs.push((await expect(srv.url + 'small.bin', 'HEAD', [200])).seconds * 1000);
        const lat: number[] = [];
        for (let k = 0; k < 500; k++) lat.push((await send(srv.url + 'small.bin', 'HEAD', {}, undefined, agent)).seconds * 1000);
        r.hotHeadP50Ms.push(percentile(lat, 50));
        r.hotHeadP99Ms.push(percentile(lat, 99));
      } finally {
        await srv.stop();
      }
    }
  }
  agent.destroy();
  const cache = Object.fromEntries(Object.entries(cacheRuns).map(([k, v]) => [k, {
    blocks: median(v.blocks), startSeconds: summary(v.startSeconds), firstHeadMs: summary(v.firstHeadMs),
    hotHeadP50Ms: summary(v.hotHeadP50Ms), hotHeadP99Ms: summary(v.hotHeadP99Ms),
  }]));

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
  const result = { runs: o.runs, propfind, cacheWith100kBlocks: { blockBytes: BLOCK_BYTES, blocksPerKey: BLOCKS_PER_KEY, ...cache }, concurrency64: { wrk: `wrk -t1 -c64 -d${seconds}s --latency`, ...concurrency } };
  return { ...result, markdown: scaleMarkdown(result) };
}

function scaleMarkdown(r: { propfind: unknown[]; cacheWith100kBlocks: Record<string, unknown>; concurrency64: Record<string, unknown> }): string {
  const f = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v.toPrecision(3)) : 'n/a');
  const lines = ['| PROPFIND entries | davgate cold s | rclone cold s | davgate hot s | rclone hot s | nginx s | apache s |', '|--:|--:|--:|--:|--:|--:|--:|'];
  for (const p of r.propfind as Array<{ entries: number; coldSeconds: Record<string, { median: number }>; hotSeconds: Record<string, { median: number }> }>) {
    lines.push(`| ${p.entries} | ${f(p.coldSeconds.davgate?.median)} | ${f(p.coldSeconds.rclone?.median)} | ${f(p.hotSeconds.davgate?.median)} | ${f(p.hotSeconds.rclone?.median)} | ${f(p.hotSeconds.nginx?.median)} | ${f(p.hotSeconds.apache?.median)} |`);
  }
  lines.push('', '| davgate cache | blocks | start-up s | first HEAD ms | hot HEAD p50 ms | hot HEAD p99 ms |', '|---|--:|--:|--:|--:|--:|');
  for (const which of ['empty', '100k']) {
    const c = r.cacheWith100kBlocks[which] as { blocks: number; startSeconds: { median: number }; firstHeadMs: { median: number }; hotHeadP50Ms: { median: number }; hotHeadP99Ms: { median: number } } | undefined;
    if (c) lines.push(`| ${which} | ${c.blocks} | ${f(c.startSeconds.median)} | ${f(c.firstHeadMs.median)} | ${f(c.hotHeadP50Ms.median)} | ${f(c.hotHeadP99Ms.median)} |`);
  }
  lines.push('', '| 64 clients, 4 KiB GET hot | req/s | p50 ms | p99 ms |', '|---|--:|--:|--:|');
  for (const [k, v] of Object.entries(r.concurrency64)) {
    if (typeof v !== 'object' || v === null) continue;
    const c = v as { medianReqPerSec: number; medianP50Ms: number; medianP99Ms: number };
    lines.push(`| ${k} | ${f(c.medianReqPerSec)} | ${f(c.medianP50Ms)} | ${f(c.medianP99Ms)} |`);
  }
  return lines.join('\n');
}
