// The measurements that need more than one timed request: wrk, a PUT until it is durable
// upstream, and the peak RSS of a server's process tree under concurrent large downloads.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { expect } from './http.js';
import { MiB, sleep } from './util.js';

export interface WrkResult { reqPerSec: number; latencyMs: { p50: number; p90: number; p99: number } | undefined }

function toMs(v: string, unit: string): number {
  return Number(v) * ({ us: 0.001, ms: 1, s: 1000, m: 60000 }[unit] ?? NaN);
}

/** `wrk -t1 -c<conns> -d<seconds>s --latency url` (asynchronously: the harness keeps running). */
export function wrk(url: string, conns: number, seconds: number): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('wrk', ['-t1', `-c${conns}`, `-d${seconds}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { out += b.toString(); });
    p.on('error', reject);
    p.on('close', () => {
      const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
      if (!rps) return reject(new Error(`wrk failed: ${out}`));
      // non-2xx answers mean the server is not serving the file: never report them as throughput
      const bad = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
      if (bad) return reject(new Error(`wrk ${url}: ${bad[1]} non-2xx responses`));
      const pct = (p: string) => { const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s|m)`).exec(out); return m ? toMs(m[1]!, m[2]!) : NaN; };
      const latencyMs = /Latency Distribution/.test(out) ? { p50: pct('50'), p90: pct('90'), p99: pct('99') } : undefined;
      resolve({ reqPerSec: Number(rps[1]), latencyMs });
    });
  });
}

/**
 * PUT `file` to `url` and wait until the response is back AND `upstreamPath` (the object as
 * the upstream stores it, on local disk) has the full size. Returns seconds from the start of
 * the PUT, and how long the response alone took.
 */
export async function putDurable(url: string, file: { path: string; size: number }, upstreamPath: () => Promise<number | undefined>, timeoutMs = 120_000): Promise<{ seconds: number; responseSeconds: number }> {
  const t0 = performance.now();
  const r = await expect(url, 'PUT', [200, 201, 204], {}, { bodyFile: file });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const size = await upstreamPath();
    if (size === file.size) break;
    if (Date.now() > deadline) throw new Error(`PUT ${url}: upstream has ${size ?? 'nothing'} of ${file.size} bytes after ${timeoutMs} ms`);
    await sleep(5);
  }
  return { seconds: (performance.now() - t0) / 1000, responseSeconds: r.seconds };
}

/**
 * Write back every dirty page (any user may). A PUT that starts while the kernel still writes
 * back the previous server's 256 MiB pays for it (measured: 0.5 s alone, 1.1–1.5 s right after
 * another PUT), so each PUT run starts with nothing left to write, whichever server it is.
 */
export function writeBack(): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('sync', [], { stdio: 'ignore' });
    p.on('error', reject);
    p.on('close', () => resolve());
  });
}

/**
 * Write back and drop the page cache (root only), so that a cold run reads its upstream from
 * disk whichever server it is. False when it could not be dropped.
 */
export async function dropPageCache(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', 'sync && echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
    p.on('error', () => resolve(false));
    p.on('close', (code) => resolve(code === 0));
  });
}

export const fileSize = async (path: string): Promise<number | undefined> => (await stat(path).catch(() => undefined))?.size;

/** Same bytes as `source` at 16 places (cheap enough to run after every PUT, outside the timing). */
export async function sameSampled(a: string, source: string, size: number): Promise<boolean> {
  const [fa, fb] = [await open(a), await open(source)];
  try {
    for (let i = 0; i < 16; i++) {
      const off = Math.max(0, Math.floor(((size - 65536) * i) / 15));
      const len = Math.min(65536, size - off);
      const [x, y] = [Buffer.alloc(len), Buffer.alloc(len)];
      await fa.read(x, 0, len, off);
      await fb.read(y, 0, len, off);
      if (!x.equals(y)) return false;
    }
    return true;
  } finally {
    await fa.close();
    await fb.close();
  }
}

/** The pid and all its descendants (Apache's workers, nginx's worker, ...). */
function pidTree(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    const pid = out[i]!;
    // children are listed per thread: a child forked by any thread of the process counts
    let tasks: string[] = [];
    try { tasks = readdirSync(`/proc/${pid}/task`); } catch { /* gone */ }
    for (const t of tasks) {
      let kids = '';
      try { kids = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8'); } catch { /* gone */ }
      for (const c of kids.trim().split(/\s+/)) if (c) out.push(Number(c));
    }
  }
  return out;
}

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Sum of VmRSS over a process tree, in MB (10^6 bytes). */
export const treeRssMB = (pid: number): number => (pidTree(pid).reduce((s, p) => s + rssKiB(p), 0) * 1024) / 1e6;

/** One GET by a curl process, body discarded (keeps the harness's event loop free for sampling). */
function curlGet(url: string): Promise<{ status: number; bytes: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    p.on('error', reject);
    p.on('close', () => {
      const [status, bytes, seconds] = out.trim().split(' ').map(Number);
      resolve({ status: status ?? 0, bytes: bytes ?? 0, seconds: seconds ?? NaN });
    });
  });
}

/**
 * Seconds of one whole GET of `url` (`size` bytes) by curl: a Node client tops out near
 * 850 MiB/s here and would measure itself, not the servers (curl reads nginx at ~2 GB/s).
 */
export async function getSeconds(url: string, size: number): Promise<number> {
  const r = await curlGet(url);
  if (r.status !== 200 || r.bytes !== size) throw new Error(`GET ${url}: HTTP ${r.status}, ${r.bytes} of ${size} bytes`);
  return r.seconds;
}

/** Peak RSS (MB, summed over the process tree, sampled every `everyMs`) while `work` runs. */
export async function peakRssDuring<T>(pid: number, work: () => Promise<T>, everyMs = 50): Promise<{ peakMB: number; result: T }> {
  let peak = treeRssMB(pid);
  const timer = setInterval(() => { peak = Math.max(peak, treeRssMB(pid)); }, everyMs);
  try {
    const result = await work();
    return { peakMB: Math.max(peak, treeRssMB(pid)), result };
  } finally {
    clearInterval(timer);
  }
}

/**
 * Peak RSS (MB, summed over the process tree, sampled every 50 ms) while `clients` concurrent
 * curl clients each GET `url` (`size` bytes) to the end.
 */
export async function peakRssUnderLoad(pid: number, url: string, size: number, clients: number): Promise<{ peakMB: number; seconds: number; aggregateMiBps: number }> {
  const t0 = performance.now();
  const { peakMB } = await peakRssDuring(pid, async () => {
    const rs = await Promise.all(Array.from({ length: clients }, () => curlGet(url)));
    for (const r of rs) if (r.status !== 200 || r.bytes !== size) throw new Error(`GET ${url}: HTTP ${r.status}, ${r.bytes} bytes`);
  });
  const seconds = (performance.now() - t0) / 1000;
  return { peakMB, seconds, aggregateMiBps: (clients * size) / MiB / seconds };
}
