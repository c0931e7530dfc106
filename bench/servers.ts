// The servers under test, each started on a random loopback port and registered, so that every
// one is stopped by its pid at the end, also on failure or Ctrl-C, and its temp dirs removed.
//   davgate  – the real CLI (test/helpers/gateway-process.ts), fresh temp cache unless given one
//   rclone   – `rclone serve webdav <remote> --vfs-cache-mode full` with its own --cache-dir
//   nginx    – nginx + dav-ext serving a directory (test/helpers/dav-servers.ts)
//   apache   – Apache mod_dav serving a directory (test/helpers/dav-servers.ts)
//   ceph     – single-node Ceph with the RADOS Gateway (test/helpers/ceph.ts)
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startGatewayProcess } from '../test/helpers/gateway-process.js';
import { startNginxDav, startApacheDav, type DavServer } from '../test/helpers/dav-servers.js';
import { startCeph, type CephCluster } from '../test/helpers/ceph.js';
import { reapOnExit } from '../test/helpers/reaper.js';
import { canConnect, freePort, log, sleep } from './util.js';

export interface Server {
  name: string;
  /** Base URL, ends with '/'. */
  url: string;
  pid: number;
  stop(): Promise<void>;
}

interface Live { pid: number; dirs: string[]; stop(): Promise<void> }
const live = new Set<Live>();

function track<T extends { stop(): Promise<void> }>(obj: T, pid: number, dirs: string[]): T {
  const entry: Live = { pid, dirs, stop: () => obj.stop() };
  live.add(entry);
  const stop = obj.stop.bind(obj);
  obj.stop = async () => { live.delete(entry); await stop(); };
  return obj;
}

/** Stops every server still running (in reverse start order). */
export async function stopAll(): Promise<void> {
  for (const s of [...live].reverse()) {
    live.delete(s);
    await s.stop().catch((e: unknown) => log(`stop failed: ${String(e)}`));
  }
}

/** Synchronous last resort for signals: SIGTERM every pid, remove the temp dirs. */
export function killAllSync(): void {
  for (const s of live) {
    try { if (s.pid > 0) process.kill(s.pid, 'SIGTERM'); } catch { /* gone */ }
    for (const d of s.dirs) rmSync(d, { recursive: true, force: true });
  }
  live.clear();
}

export interface DavgateOptions { name?: string; cache?: string; env?: Record<string, string>; args?: string[]; startTimeoutMs?: number }

/**
 * davgate is started as a user starts it: the bin, whose shebang sets its memory settings
 * (V8's young generation capped at 4 MiB per semi-space, glibc returning freed 4 MiB block
 * buffers; see src/main.ts). No NODE_OPTIONS of the bench's own.
 */
let profiled: { env: Record<string, string>; nodeArgs: string[] } | undefined;
/**
 * From now on, start every davgate as `node <nodeArgs> main.js` with `env` (--cpu-prof: node
 * refuses it in NODE_OPTIONS, so the bin's shebang settings are passed by hand).
 */
export function profileDavgate(p: { env: Record<string, string>; nodeArgs: string[] }): void { profiled = p; }

/** davgate in front of `upstream` (a directory, http://… WebDAV URL or s3://bucket/). */
export async function startDavgate(upstream: string, opts: DavgateOptions = {}): Promise<Server & { cacheDir: string; adminUrl: string }> {
  const gw = await startGatewayProcess({
    upstream,
    ...(opts.cache !== undefined ? { cache: opts.cache } : {}),
    args: ['--log-level', 'warn', ...(opts.args ?? [])],
    env: { ...profiled?.env, ...(opts.env ?? {}) },
    asBin: true,
    ...(opts.startTimeoutMs !== undefined ? { startTimeoutMs: opts.startTimeoutMs } : {}),
    ...(profiled ? { nodeArgs: profiled.nodeArgs } : {}),
  });
  const s = { name: opts.name ?? 'davgate', url: gw.url, adminUrl: gw.adminUrl, pid: gw.pid, cacheDir: gw.cacheDir, stop: () => gw.stop() };
  return track(s, gw.pid, opts.cache === undefined ? [gw.cacheDir] : []);
}

function exited(c: ChildProcess): boolean { return c.exitCode !== null || c.signalCode !== null; }

async function terminate(c: ChildProcess): Promise<void> {
  if (exited(c)) return;
  const done = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  if (await Promise.race([done.then(() => false), sleep(5000).then(() => true)])) { c.kill('SIGKILL'); await done; }
}

export interface RcloneOptions {
  name?: string;
  env?: Record<string, string>;
  /** Variables removed from rclone's environment (AWS_CA_BUNDLE breaks rclone 1.60's S3 client). */
  unsetEnv?: string[];
  args?: string[];
}

function rcloneEnv(opts: RcloneOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...(opts.env ?? {}) };
  for (const k of opts.unsetEnv ?? []) delete env[k];
  return env;
}

/** `rclone serve webdav <remote> --vfs-cache-mode full` with a fresh, empty --cache-dir. */
export async function startRclone(remote: string, opts: RcloneOptions = {}): Promise<Server & { cacheDir: string }> {
  const cacheDir = await mkdtemp(join(tmpdir(), 'davgate-bench-rclone-'));
  let output = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = spawn('rclone', ['serve', 'webdav', remote, '--addr', `127.0.0.1:${port}`, '--vfs-cache-mode', 'full',
      '--cache-dir', cacheDir, '--config', '/dev/null', ...(opts.args ?? [])],
    { stdio: ['ignore', 'ignore', 'pipe'], env: rcloneEnv(opts) });
    const unreap = reapOnExit(child.pid);
    output = '';
    child.stderr?.on('data', (b: Buffer) => { output = (output + b.toString()).slice(-8000); });
    const closed = new Promise<void>((r) => child.once('close', () => r()));
    const deadline = Date.now() + 15_000;
    let ready = false;
    while (Date.now() < deadline && !exited(child) && !(ready = await canConnect(port))) await sleep(30);
    if (!ready && exited(child)) {
      await closed; // its stderr is complete now
      unreap();
      if (/address already in use/i.test(output)) continue; // lost the port race: another port
      break;
    }
    if (!ready) { await terminate(child); unreap(); output += '\n(no listener within 15 s)'; break; }
    const s = {
      name: opts.name ?? 'rclone', url: `http://127.0.0.1:${port}/`, pid: child.pid ?? -1, cacheDir,
      stop: async () => { await terminate(child); unreap(); await rm(cacheDir, { recursive: true, force: true }); },
    };
    return track(s, s.pid, [cacheDir]);
  }
  await rm(cacheDir, { recursive: true, force: true });
  throw new Error(`rclone serve webdav ${remote} did not start:\n${output}`);
}

export type DavBaseline = Server & { root: string };

function baseline(name: string, d: DavServer): DavBaseline {
  const s = { name, url: d.url, pid: d.pid, root: d.root, stop: () => d.stop() };
  // the helper's temp dir is <dir>/root: remove <dir> on a signal
  return track(s, d.pid, [dirname(d.root)]);
}

export const startNginx = async (): Promise<DavBaseline> => baseline('nginx', await startNginxDav());
export const startApache = async (): Promise<DavBaseline> => baseline('apache', await startApacheDav());

/** Ceph (mon, osd on memstore, radosgw); it kills its own daemons on exit, whatever happens. */
export async function startS3(): Promise<CephCluster> {
  const c = await startCeph();
  return track(c, -1, []);
}
