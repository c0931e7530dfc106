// Small shared helpers of the benchmark harness: progress output, statistics, ports, packages.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

export const MiB = 1024 * 1024;

const t0 = performance.now();

/** A progress line on stderr, prefixed with the seconds since the harness started. */
export function log(msg: string): void {
  process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
}

export function elapsedSeconds(): number {
  return (performance.now() - t0) / 1000;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
let aptUpdated = false;

/** Installs a missing command's Debian package (one `apt-get update` per run). */
export function need(cmd: string, pkg: string): void {
  if (has(cmd)) return;
  log(`installing ${pkg} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) { spawnSync('apt-get', ['update'], { stdio: 'ignore', env }); aptUpdated = true; }
  const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: ['ignore', 'ignore', 'inherit'], env });
  if (r.status !== 0 || !has(cmd)) throw new Error(`cannot install ${pkg}`);
}

/** nginx, Apache and Ceph come from scripts/test-deps.sh; it is run when any of them is missing. */
export function ensureServerPackages(): void {
  const files = ['/usr/sbin/nginx', '/usr/lib/nginx/modules/ngx_http_dav_ext_module.so', '/usr/sbin/apache2', '/usr/lib/apache2/modules/mod_dav_fs.so'];
  if (files.every((f) => existsSync(f)) && ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin'].every(has)) return;
  log('nginx/Apache/Ceph missing: running scripts/test-deps.sh');
  const script = fileURLToPath(new URL('../../scripts/test-deps.sh', import.meta.url));
  const r = spawnSync('bash', [script], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) log(`scripts/test-deps.sh failed (exit ${r.status}); servers that cannot start are reported as n/a`);
}

export const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0]!;

/** What the figures depend on: versions, cores, load (a busy machine makes them noisy). */
export function environment(): Record<string, unknown> {
  const first = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').find((l) => l.trim())?.trim() ?? 'n/a';
  };
  return {
    node: process.version,
    cpus: cpus().length,
    loadavg: loadavg(),
    rclone: first('rclone', ['version']),
    wrk: first('wrk', ['--version']).replace(/\s+Copyright.*/, ''),
    nginx: first('/usr/sbin/nginx', ['-v']),
    apache: first('/usr/sbin/apache2', ['-v']),
    ceph: first('radosgw', ['--version']),
  };
}

function cpuTimes(): { idle: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { idle: (f[3] ?? 0) + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
}

/** Share of all cores busy (0..1) over `ms`, while the harness itself is idle. */
export async function cpuBusy(ms = 1000): Promise<number> {
  const a = cpuTimes();
  await sleep(ms);
  const b = cpuTimes();
  return b.total > a.total ? 1 - (b.idle - a.idle) / (b.total - a.total) : 0;
}
