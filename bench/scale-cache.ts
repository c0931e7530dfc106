// `--scale`, a large cache: davgate's start-up time until it listens with `count` cached
// blocks, (a) after a crash (no saved index: every block file is listed and stat'ed), (b) after
// a clean stop (the index saved at close is read instead), against an empty cache; the time the
// clean stop takes (it writes that index); then getnode over HTTP (HEAD of a file: the first one
// stats upstream, then 500 hot on one keep-alive connection).
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { crc32 } from '@node-rs/crc32';
import pLimit from 'p-limit';
import { expect, send } from './http.js';
import { startDavgate } from './servers.js';
import { log, median, percentile } from './util.js';

const BLOCKS_PER_KEY = 10;
const BLOCK_BYTES = 1024;

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

/** A cache dir with `count` block files: <root>/blocks/<k0k1>/<key>/<ver>-<idx>-<crc32>. */
async function fillCache(root: string, count: number): Promise<void> {
  const limit = pLimit(64);
  const data = randomBytes(BLOCK_BYTES); // the content is never read here: one buffer will do
  const name = crc32(data).toString(16).padStart(8, '0');
  const jobs: Array<Promise<void>> = [];
  for (let k = 0; k * BLOCKS_PER_KEY < count; k++) {
    jobs.push(limit(async () => {
      const key = hex(20);
      const version = hex(8);
      const dir = join(root, 'blocks', key.slice(0, 2), key);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      for (let i = 0; i < BLOCKS_PER_KEY && k * BLOCKS_PER_KEY + i < count; i++) {
        await writeFile(join(dir, `${version}-${i.toString(16)}-${name}`), data, { mode: 0o600 });
      }
    }));
  }
  await Promise.all(jobs);
}

async function blockCount(adminUrl: string): Promise<number> {
  const text = await (await fetch(adminUrl + 'metrics')).text();
  return Number(/^davgate_cache_blocks (\d+)/m.exec(text)?.[1] ?? NaN);
}

export interface StartRuns { blocks: number[]; startSeconds: number[]; stopSeconds: number[]; firstHeadMs: number[]; hotHeadP50Ms: number[]; hotHeadP99Ms: number[] }
const CASES = ['empty', 'after a crash (scan)', 'after a clean stop (index)'] as const;

export async function cacheStartScale(upstreamRoot: string, scratch: string, count: number, runs: number): Promise<Record<string, StartRuns & { medians: Record<string, number> }>> {
  const cacheDir = join(scratch, `cache-${count}`);
  log(`scale: writing ${count} block files into ${cacheDir}`);
  await fillCache(cacheDir, count);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const out: Record<string, StartRuns> = {};
  try {
    for (let i = 0; i < runs; i++) {
      for (const which of CASES) {
        log(`scale: davgate start-up, cache ${which}, ${count} blocks, run ${i + 1}/${runs}`);
        if (which === 'after a crash (scan)') await rm(join(cacheDir, 'blocks.index'), { force: true });
        const t0 = performance.now();
        const srv = await startDavgate(upstreamRoot, which === 'empty' ? {} : { cache: cacheDir, startTimeoutMs: 120_000 });
        const r = (out[which] ??= { blocks: [], startSeconds: [], stopSeconds: [], firstHeadMs: [], hotHeadP50Ms: [], hotHeadP99Ms: [] });
        r.startSeconds.push((performance.now() - t0) / 1000);
        try {
          r.blocks.push(await blockCount(srv.adminUrl));
          r.firstHeadMs.push((await expect(srv.url + 'small.bin', 'HEAD', [200])).seconds * 1000);
          const lat: number[] = [];
          for (let k = 0; k < 500; k++) lat.push((await send(srv.url + 'small.bin', 'HEAD', {}, undefined, agent)).seconds * 1000);
          r.hotHeadP50Ms.push(percentile(lat, 50));
          r.hotHeadP99Ms.push(percentile(lat, 99));
        } finally {
          const t1 = performance.now();
          await srv.stop();
          r.stopSeconds.push((performance.now() - t1) / 1000);
        }
      }
    }
  } finally {
    agent.destroy();
    await rm(cacheDir, { recursive: true, force: true });
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, {
    ...v, medians: Object.fromEntries(Object.entries(v).map(([f, xs]) => [f, median(xs as number[])])),
  }]));
}

export function cacheStartMarkdown(count: number, r: Record<string, { medians: Record<string, number> }>, f: (v: unknown) => string): string[] {
  const lines = [`| davgate cache (${count} blocks) | blocks | start-up s | clean stop s | first HEAD ms | hot HEAD p50 ms | hot HEAD p99 ms |`, '|---|--:|--:|--:|--:|--:|--:|'];
  for (const which of CASES) {
    const m = r[which]?.medians;
    if (m) lines.push(`| ${which} | ${f(m.blocks)} | ${f(m.startSeconds)} | ${f(m.stopSeconds)} | ${f(m.firstHeadMs)} | ${f(m.hotHeadP50Ms)} | ${f(m.hotHeadP99Ms)} |`);
  }
  return lines;
}
