// `--scale`, getnode: how the latency of a hot getnode grows with the number of node records
// held (1k ... 1M). In process, on the real cache manager over the fs upstream: the figure is
// the node table's own cost, without HTTP in front (PROPFIND and HEAD rows add that).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { CacheManager } from '../src/cachemgr/cachemgr.js';
import { FsUpstream } from '../src/upstream/fs.js';
import { log, median, percentile } from './util.js';

const PER_DIR = 1000;
const SAMPLES = 20_000;

export interface GetnodeRow {
  nodes: number;
  /** Seconds to install them all by listing their directories (a cold PROPFIND per directory). */
  listSeconds: number;
  p50Micros: number;
  p99Micros: number;
  meanMicros: number;
  /** Heap growth per record held (V8 heap only; strings and objects of the records). */
  heapBytesPerNode: number;
}

/** `count` empty files in directories of PER_DIR: <root>/d<i>/f<j>. */
async function fillTree(root: string, from: number, to: number): Promise<void> {
  const limit = pLimit(128);
  const jobs: Array<Promise<void>> = [];
  for (let d = Math.floor(from / PER_DIR); d * PER_DIR < to; d++) {
    jobs.push(limit(async () => {
      const dir = join(root, `d${d}`);
      await mkdir(dir, { recursive: true });
      for (let f = 0; f < PER_DIR; f++) await writeFile(join(dir, `f${f}`), '');
    }));
  }
  await Promise.all(jobs);
}

const gc = (): void => { (globalThis as { gc?: () => void }).gc?.(); };

async function measure(root: string, cacheDir: string, n: number): Promise<GetnodeRow> {
  const upstream = await FsUpstream.open(root);
  const cache = await CacheManager.open(upstream, {
    dir: cacheDir, blockSize: 4 << 20, maxBytes: 1 << 30, highWatermark: 0.95, lowWatermark: 0.85,
    ttl: 3_600_000, nodeTable: 'memory', readAheadMaxBlocks: 0, maxInflightFetches: 4,
    memoryBytes: 0, memoryMaxBlockBytes: 0, listingEntries: 0, nodeEntries: n + 2 * PER_DIR,
  });
  try {
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    for (let d = 0; d * PER_DIR < n; d++) for await (const node of cache.list(`/d${d}`)) void node;
    const listSeconds = (performance.now() - t0) / 1000;
    gc();
    // Below 100k records the figure is lost in the heap's own noise (a collection or not).
    const heapBytesPerNode = n >= 100_000 ? (process.memoryUsage().heapUsed - heap0) / n : NaN;
    if (cache.nodeCount < n) throw new Error(`getnode scale: ${cache.nodeCount} records held, expected ${n}`);
    const lat: number[] = [];
    let sum = 0;
    for (let i = 0; i < SAMPLES; i++) {
      const k = Math.floor(Math.random() * n);
      const path = `/d${Math.floor(k / PER_DIR)}/f${k % PER_DIR}`;
      const t = process.hrtime.bigint();
      const node = await cache.getnode(path);
      const us = Number(process.hrtime.bigint() - t) / 1000;
      if (node.path !== path) throw new Error(`getnode ${path}: got ${node.path}`);
      lat.push(us);
      sum += us;
    }
    return { nodes: n, listSeconds, p50Micros: percentile(lat, 50), p99Micros: percentile(lat, 99), meanMicros: sum / SAMPLES, heapBytesPerNode };
  } finally {
    await cache.close();
  }
}

/** One row per size, each the median run of `runs` (fresh cache manager per run). */
export async function getnodeScale(sizes: readonly number[], runs: number): Promise<GetnodeRow[]> {
  const base = await mkdtemp(join(tmpdir(), 'davgate-scale-nodes-'));
  const root = join(base, 'tree');
  const rows: GetnodeRow[] = [];
  try {
    let have = 0;
    for (const n of sizes) {
      log(`scale: getnode, writing ${n - have} more empty files (${n} in all)`);
      await fillTree(root, have, n);
      have = n;
      const per: GetnodeRow[] = [];
      for (let i = 0; i < runs; i++) {
        log(`scale: getnode with ${n} records, run ${i + 1}/${runs}`);
        per.push(await measure(root, join(base, `cache-${n}-${i}`), n));
      }
      const m = (f: (r: GetnodeRow) => number) => median(per.map(f));
      rows.push({ nodes: n, listSeconds: m((r) => r.listSeconds), p50Micros: m((r) => r.p50Micros), p99Micros: m((r) => r.p99Micros), meanMicros: m((r) => r.meanMicros), heapBytesPerNode: m((r) => r.heapBytesPerNode) });
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
  return rows;
}
