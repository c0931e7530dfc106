// A throw-away single-node Ceph (Pacific, Debian packages) for e2e tests: S3 through the RADOS
// Gateway and, optionally, CephFS through ceph-fuse. Everything lives in one temporary directory
// (config, mon store, pid files, admin sockets, logs) and listens on 127.0.0.1 only, on random ports.
// The recipe is this file (docs/architecture.md, Real components); scripts/test-deps.sh installs the packages.
//
// Start order: mon -> osd (memstore: data in RAM) -> radosgw (+ a test user) -> [mds + ceph-fuse].
// Stop order matters: unmount first, then radosgw, mds, osd, mon, each by the pid in its
// pid file, waiting for each to exit. Stopping everything at once makes radosgw hang for its 120 s
// exit alarm. The daemons daemonize, so they are not our children: their exit is watched through
// /proc/<pid>/stat, where an exited daemon may stay a zombie (state Z) until init reaps it.
//
// A process 'exit' handler, SIGINT/SIGTERM/SIGHUP handlers (which then re-raise the signal) and a
// watchdog process that notices the test process is gone (even after SIGKILL) SIGKILL whatever is
// still running and remove the directory, so a crashed or cancelled test run leaves no daemons.
//
// Ceph 16 race worked around here: right after it connects, a MonClient can still hold a zero fsid,
// and the mon refuses what it sends then ("wrong fsid"; ~1 start in 4 on 2 cores). CLI commands that
// hit it are retried; ceph-osd is kept from sending commands at start (see the [osd] section).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, open, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freeDir, removeDir, sleep } from './gateway-process.js';

/** Fixed credentials of the S3 test user created in every cluster (AWS-shaped: 20 and 40 chars). */
export const CEPH_S3_ACCESS_KEY = 'DAVGATETESTACCESSKEY';
export const CEPH_S3_SECRET_KEY = 'davgateTestSecretKey0000000000000000000x';
export const CEPH_S3_USER = 'davgate-test';

/** memstore keeps all object data in RAM; this caps it (the OSD reports this as its size). */
const MEMSTORE_BYTES = 1024 * 1024 * 1024;
const CMD_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 30_000;
const POLL_MS = 50;
const LOG_TAIL_BYTES = 8 * 1024;
const LOG_SNAPSHOT_BYTES = 64 * 1024;
const REQUIRED_COMMANDS = ['ceph-authtool', 'monmaptool', 'ceph-mon', 'ceph-osd', 'ceph', 'radosgw', 'radosgw-admin'];
const CEPHFS_COMMANDS = ['ceph-mds', 'ceph-fuse'];

export interface CephS3Endpoint {
  /** http://127.0.0.1:<port> of the RADOS Gateway (use path-style addressing). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export interface StartCephOptions {
  /** Also start an MDS, create a file system and mount it with ceph-fuse (~0.7 s more). */
  cephfs?: boolean;
}

export interface CephCluster {
  /** Temporary directory holding everything; removed by stop(). */
  dir: string;
  /** Path of the cluster's ceph.conf (pass as CEPH_CONF to ceph CLI tools). */
  conf: string;
  s3: CephS3Endpoint;
  /** ceph-fuse mount point of the file system root, when started with { cephfs: true }. */
  cephfsMount?: string;
  /** Pids of the cluster's daemons (mon, osd, radosgw, and mds, ceph-fuse with CephFS). */
  pids(): number[];
  /** Unmounts, stops the daemons in order (SIGKILL after a grace period), removes `dir`. Idempotent. */
  stop(): Promise<void>;
  /** Tails of every daemon's log; after stop(), the tails as they were when it stopped. */
  log(): Promise<string>;
  /** Stops radosgw only (an S3 outage: connections to the endpoint are refused). Idempotent. */
  stopRgw(): Promise<void>;
  /** Starts radosgw again on the same port, with the same data; resolves once the port answers. */
  startRgw(): Promise<void>;
}

interface Daemon {
  /** Ceph entity name, used for the log and pid file names: mon.a, osd.0, client.rgw.a, mds.a, client.fuse. */
  name: string;
  pid: number;
  /** /proc/<pid>/stat field 22, to never signal a recycled pid. */
  starttime: string;
}

/** Milliseconds to wait after SIGTERM before SIGKILL, per daemon kind. */
function graceMs(d: Daemon): number {
  // ceph-mds 16.2 takes a fixed ~4.8 s to stop after SIGTERM (a 1 s wait for the mon to ack its
  // "down:dne" beacon, then internal threads that only notice on their next wake-up). Its data is
  // in the OSD and the file system is unmounted by then, so a short grace and SIGKILL lose nothing.
  if (d.name.startsWith('mds.')) return 1_000;
  return 10_000;
}

// ---------------------------------------------------------------------------------------------
// /proc helpers

interface ProcStat {
  state: string;
  starttime: string;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ..."; comm may contain spaces and parentheses, so split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = rest[0];
  const starttime = rest[19]; // field 22 overall
  if (state === undefined || starttime === undefined) return undefined;
  return { state, starttime };
}

/** True while the daemon runs: its pid exists, is not a zombie, and is still the same process. */
function isRunning(d: Daemon): boolean {
  const st = readStat(d.pid);
  return st !== undefined && st.state !== 'Z' && st.state !== 'X' && st.starttime === d.starttime;
}

function signal(d: Daemon, sig: NodeJS.Signals): void {
  if (!isRunning(d)) return;
  try {
    process.kill(d.pid, sig);
  } catch {
    // already gone
  }
}

/** Decodes the octal escapes (\040 etc.) of /proc/self/mountinfo fields. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function isMountPoint(path: string): boolean {
  let info: string;
  try {
    info = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  return info.split('\n').some((line) => {
    const f = line.split(' ');
    return f[4] !== undefined && unescapeMountField(f[4]) === path;
  });
}

// ---------------------------------------------------------------------------------------------
// process helpers

/** Thrown when a daemon or a set-up command fails; the message carries the relevant log tails. */
export class CephStartError extends Error {
  override name = 'CephStartError';
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Commands and daemon launchers still running: killed with the daemons when the process dies. */
const children = new Set<ChildProcess>();

function spawnTracked(cmd: string, args: string[], options: Parameters<typeof spawn>[2]): ChildProcess {
  const child = spawn(cmd, args, options);
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

/** Runs a command that does not daemonize and collects its output. Never rejects on exit status. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = CMD_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTracked(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    if (child.stdout === null || child.stderr === null) throw new Error('no pipes');
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (code, sig) => resolve({ code, signal: sig, stdout, stderr }));
  });
}

function describeRun(cmd: string, args: string[], r: RunResult): string {
  return `\`${cmd} ${args.join(' ')}\` exited with ${r.code ?? r.signal}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/** Returns two distinct free TCP ports on 127.0.0.1 (both held open until both are known). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    if (a === null || typeof a === 'string') throw new Error('no port');
    return a.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/**
 * True when process `pid` itself holds a TCP socket listening on 127.0.0.1:`port`, so that another
 * process that took the port first is never mistaken for the daemon (/proc/net/tcp + /proc/<pid>/fd).
 */
async function listensOn(pid: number, port: number): Promise<boolean> {
  const wanted = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set<string>();
  for (const line of (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === wanted && f[3] === '0A' && f[9] !== undefined) inodes.add(`socket:[${f[9]}]`);
  }
  if (inodes.size === 0) return false;
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (inodes.has(target)) return true;
  }
  return false;
}

async function tailFile(path: string, bytes: number): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, bytes);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    return (size > len ? '[...]\n' : '') + buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// crash safety: process handlers, and a watchdog process, for all live clusters of this process

interface LiveCluster {
  daemons: Daemon[];
  mount?: string;
  dir: string;
}

const live = new Set<LiveCluster>();
let handlersInstalled = false;

function unmountSync(path: string): void {
  for (const [cmd, args] of [
    ['fusermount3', ['-uz', path]],
    ['fusermount', ['-uz', path]],
    ['umount', ['-l', path]],
  ] as const) {
    if (!isMountPoint(path)) return;
    spawnSync(cmd, [...args], { stdio: 'ignore', timeout: 5_000 });
  }
}

/**
 * SIGKILLs every process whose environment holds this cluster's CEPH_CONF: every daemon and command
 * the helper started has it, including a daemon that forked before its pid was read. Returns the pids.
 */
function killByConfSync(dir: string): number[] {
  const mark = `CEPH_CONF=${join(dir, 'ceph.conf')}`;
  const killed: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return killed;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue;
    }
    if (!environ.split('\0').includes(mark)) continue;
    const st = readStat(pid);
    if (st === undefined || st.state === 'Z') continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // gone
    }
  }
  return killed;
}

function killLiveSync(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const c of live) {
    if (c.mount !== undefined) unmountSync(c.mount);
    for (const d of c.daemons) signal(d, 'SIGKILL');
    killByConfSync(c.dir);
    if (c.mount !== undefined) unmountSync(c.mount); // a killed ceph-fuse leaves a dead mount
    if (c.mount === undefined || !isMountPoint(c.mount)) {
      try {
        rmSync(c.dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  }
  live.clear();
}

/*
 * The watchdog: this module run as `node ceph.js --ceph-watchdog`, in its own session, reading the
 * live clusters (JSON lines) on stdin. When stdin ends without the clusters having been stopped,
 * the test process is gone, however it went: SIGKILL, or an exception thrown inside the test
 * runner's own handler (exit code 7, no 'exit' event: seen when the runner's stdout pipe closes).
 * It then does what killLiveSync does. It costs one idle node process while clusters are up.
 */
const WATCHDOG_FLAG = '--ceph-watchdog';
let watchdog: ChildProcess | undefined;
const watchIds = new Map<LiveCluster, number>();
let nextWatchId = 1;

function publish(c: LiveCluster): void {
  try {
    if (watchdog === undefined) {
      watchdog = spawn(process.execPath, [fileURLToPath(import.meta.url), WATCHDOG_FLAG], {
        stdio: ['pipe', 'ignore', 'ignore'],
        detached: true,
      });
      watchdog.on('error', () => undefined);
      watchdog.stdin?.on('error', () => undefined);
      watchdog.unref();
      (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    }
    let id = watchIds.get(c);
    if (id === undefined) watchIds.set(c, (id = nextWatchId++));
    const state = live.has(c) ? { id, dir: c.dir, mount: c.mount, daemons: c.daemons } : { id, done: true };
    watchdog.stdin?.write(`${JSON.stringify(state)}\n`);
    if (live.size === 0) {
      watchdog.stdin?.end(); // nothing left to guard: let it exit
      watchdog = undefined;
      watchIds.clear();
    }
  } catch {
    // best effort: the in-process handlers remain
  }
}

function runWatchdog(): void {
  const clusters = new Map<number, LiveCluster>();
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const m = JSON.parse(line) as { id: number; done?: boolean; dir: string; mount?: string; daemons: Daemon[] };
        if (m.done === true) clusters.delete(m.id);
        else clusters.set(m.id, { dir: m.dir, daemons: m.daemons, ...(m.mount !== undefined ? { mount: m.mount } : {}) });
      } catch {
        // ignore a torn line
      }
    }
  });
  process.stdin.on('end', () => {
    for (const c of clusters.values()) live.add(c);
    killLiveSync();
    process.exit(0);
  });
  // no signal from the test process's group may stop it before it has cleaned up
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => undefined);
}

if (process.argv[2] === WATCHDOG_FLAG && process.argv[1] === fileURLToPath(import.meta.url)) runWatchdog();

function track(c: LiveCluster): void {
  if (!handlersInstalled) {
    handlersInstalled = true;
    process.on('exit', killLiveSync);
    // The test runner cancels a test file with SIGTERM; a signal's default action skips 'exit'.
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      const onSignal = (): void => {
        killLiveSync();
        process.removeListener(sig, onSignal);
        // keep the default action (termination) unless someone else handles this signal
        if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
      };
      process.on(sig, onSignal);
    }
  }
  live.add(c);
  publish(c);
}

function untrack(c: LiveCluster): void {
  live.delete(c);
  publish(c);
}

// ---------------------------------------------------------------------------------------------

function cephConf(o: { dir: string; fsid: string; monPort: number; rgwPort: number }): string {
  const { dir } = o;
  return `# written by test/helpers/ceph.ts
[global]
fsid = ${o.fsid}
mon host = v1:127.0.0.1:${o.monPort}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
# the mon shuts itself down below 5 % free disk by default; a full CI disk should not do that
mon data avail crit = 1
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES}
run dir = ${dir}/run
pid file = ${dir}/run/$name.pid
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
keyring = ${dir}/keyring
mon data = ${dir}/mon/$cluster-$id
osd data = ${dir}/osd/$cluster-$id
mds data = ${dir}/mds/$cluster-$id

[osd]
# Right after it connects, a daemon's MonClient can still hold a zero fsid; the mon refuses what it
# sends then ("wrong fsid"). ceph-osd sends two commands at start (set its device class, place itself
# in the CRUSH map) and exits 250 when they are refused (1 start in 4 here): it sends none with these,
# and startCeph places it with \`ceph osd crush add\` before starting it.
osd class update on start = false
osd crush update on start = false

[mds]
# The same race costs the mds its first beacon: it becomes active one beacon interval later (4 s default).
mds beacon interval = 1

[mon]
# The key setting: with the 1 s default, start-up takes ~12 s and the first bucket and object ~2 s each.
paxos propose interval = 0.01
paxos min wait = 0.001

[client]
# CLI calls (ceph, radosgw-admin) and ceph-fuse are all client.admin: one socket each, or they collide.
admin socket = ${dir}/run/$name.$pid.asok
# a client left behind by a dead test process gives up on a dead mon after this, not 300 s
client mount timeout = 30

[client.rgw.a]
admin socket = ${dir}/run/$name.asok
rgw frontends = beast endpoint=127.0.0.1:${o.rgwPort}
# the default 512 threads cost ~45 MB
rgw thread pool size = 64
# No bucket lifecycle in tests. A restarted radosgw finds the lifecycle shard locks of the one before
# still held and sleeps 5 s, and stopping it waits for that sleep.
rgw enable lc threads = false
# The tails of overwritten and deleted objects wait for garbage collection (2 h by default); with
# memstore they hold RAM and count against memstore device bytes, so collect them after 10 s.
rgw gc obj min wait = 10
rgw gc processor period = 10
`;
}

/**
 * The Ceph 16 "wrong fsid" race (see the top of this file) as it shows in daemon logs and command
 * output; the ceph CLI hits it when it first asks the mon for its command descriptions.
 */
const FSID_RACE = /wrong fsid|EPERM: problem getting command descriptions/;
const FSID_RACE_TRIES = 5;

/**
 * Starts a single-node Ceph: mon, osd (memstore), radosgw with a test user, and with
 * `{ cephfs: true }` an mds and a ceph-fuse mount. When a step fails it stops what it started and
 * throws a CephStartError carrying the failing daemon's log tail.
 */
export async function startCeph(opts: StartCephOptions = {}): Promise<CephCluster> {
  const cephfs = opts.cephfs === true;
  const t0 = performance.now();
  const marks: string[] = [];
  const mark = (what: string): void => {
    marks.push(`${what} ${((performance.now() - t0) / 1000).toFixed(2)}s`);
  };

  const dir = await freeDir('davgate-ceph-');
  const conf = join(dir, 'ceph.conf');
  const env: NodeJS.ProcessEnv = { ...process.env, CEPH_CONF: conf };
  /** Running daemons in start order; the process handlers hold this very array. */
  const daemons: Daemon[] = [];
  let rgwPort = 0;
  const mountPoint = cephfs ? join(dir, 'mnt') : undefined;
  const liveEntry: LiveCluster = { daemons, dir };
  track(liveEntry);

  let stopped: Promise<void> | undefined;
  let logSnapshot: string | undefined;
  const stopMarks: string[] = [];

  const logTails = async (bytes: number): Promise<string> => {
    const logDir = join(dir, 'log');
    let names: string[];
    try {
      names = (await readdir(logDir)).sort();
    } catch {
      return '';
    }
    const parts: string[] = [];
    for (const n of names) {
      const t = await tailFile(join(logDir, n), bytes);
      if (t.trim() !== '') parts.push(`--- ${n} ---\n${t}`);
    }
    return parts.join('\n');
  };

  /** SIGTERM, wait, SIGKILL after the grace period; resolves true when it took a SIGKILL. */
  const stopDaemon = async (d: Daemon): Promise<boolean> => {
    if (!isRunning(d)) return false;
    signal(d, 'SIGTERM');
    const deadline = Date.now() + graceMs(d);
    while (isRunning(d) && Date.now() < deadline) await sleep(POLL_MS / 2);
    if (!isRunning(d)) return false;
    signal(d, 'SIGKILL');
    const killDeadline = Date.now() + 5_000;
    while (isRunning(d) && Date.now() < killDeadline) await sleep(POLL_MS / 2);
    return true;
  };

  const forget = (d: Daemon): void => {
    const i = daemons.indexOf(d);
    if (i >= 0) daemons.splice(i, 1);
    publish(liveEntry);
  };

  const unmount = async (): Promise<void> => {
    if (mountPoint === undefined) return;
    for (const [cmd, args] of [
      ['fusermount3', ['-u', mountPoint]],
      ['fusermount', ['-u', mountPoint]],
      ['umount', [mountPoint]],
      // busy (a test left a file open) or dead (ceph-fuse killed): detach it
      ['umount', ['-l', mountPoint]],
    ] as const) {
      if (!isMountPoint(mountPoint)) return;
      await run(cmd, [...args], env, 10_000).catch(() => undefined);
    }
  };

  const stopAll = (): Promise<void> => {
    stopped ??= (async () => {
      const s0 = performance.now();
      const since = (): string => `${((performance.now() - s0) / 1000).toFixed(2)}s`;
      await unmount();
      for (const prefix of ['client.fuse', 'client.rgw.', 'mds.', 'osd.', 'mon.']) {
        for (const d of daemons.filter((x) => x.name.startsWith(prefix))) {
          const killed = await stopDaemon(d);
          stopMarks.push(`${d.name} ${since()}${killed ? ' (SIGKILL)' : ''}`);
        }
      }
      // anything else still running with this cluster's config (a daemon whose start failed half-way)
      const strays = killByConfSync(dir);
      if (strays.length > 0) stopMarks.push(`SIGKILLed strays ${strays.join(' ')}`);
      await unmount();
      logSnapshot = await logTails(LOG_SNAPSHOT_BYTES).catch(() => '');
      if (mountPoint === undefined || !isMountPoint(mountPoint)) await removeDir(dir);
      untrack(liveEntry);
    })();
    return stopped;
  };

  /** Throws a CephStartError with the log tails of `logName` (default: every daemon). */
  const fail = async (why: string, logName?: string): Promise<never> => {
    const tails: string[] = [];
    const names = logName !== undefined ? [logName] : daemons.map((d) => d.name);
    for (const n of names) {
      for (const f of [`${n}.log`, `${n}.out`]) {
        const t = await tailFile(join(dir, 'log', f), LOG_TAIL_BYTES);
        if (t.trim() !== '') tails.push(`--- ${f} ---\n${t}`);
      }
    }
    throw new CephStartError(`ceph: ${why}\n${tails.join('\n')}`);
  };

  const checkDaemons = async (): Promise<void> => {
    for (const d of daemons) {
      if (!isRunning(d)) await fail(`${d.name} (pid ${d.pid}) died`, d.name);
    }
  };

  /** Runs a CLI command until it exits 0 (retrying the fsid race only); returns its stdout. */
  const must = async (cmd: string, args: string[], logName?: string): Promise<string> => {
    for (let attempt = 1; ; attempt++) {
      const r = await run(cmd, args, env);
      if (r.code === 0) return r.stdout;
      if (attempt >= FSID_RACE_TRIES || !FSID_RACE.test(r.stdout + r.stderr)) await fail(describeRun(cmd, args, r), logName);
      console.error(`ceph: \`${cmd} ${args.slice(0, 3).join(' ')}\` hit the "wrong fsid" race, running it again`);
      await sleep(POLL_MS);
    }
  };

  /** Polls `probe` until it returns true, checking the daemons in between. */
  const waitFor = async (what: string, probe: () => Promise<boolean>, logName: string): Promise<void> => {
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    for (;;) {
      await checkDaemons();
      if (await probe().catch(() => false)) return;
      if (Date.now() > deadline) await fail(`timed out waiting for ${what}`, logName);
      await sleep(POLL_MS);
    }
  };

  /**
   * Starts a daemonizing command (its foreground process exits once the daemon is set up), then
   * reads the daemon's pid from its pid file. Output before daemonizing goes to log/<name>.out.
   */
  const launch = async (name: string, cmd: string, args: string[], pidFile = join(dir, 'run', `${name}.pid`)): Promise<Daemon> => {
    // a pid file left by an earlier instance that was SIGKILLed must not be taken for the new one
    await rm(pidFile, { force: true });
    const out = await open(join(dir, 'log', `${name}.out`), 'a');
    let code: number | null;
    let sig: NodeJS.Signals | null;
    try {
      [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
        const child = spawnTracked(cmd, args, { env, stdio: ['ignore', out.fd, out.fd], timeout: STEP_TIMEOUT_MS, killSignal: 'SIGKILL' });
        child.once('error', reject);
        child.once('exit', (c, s) => resolve([c, s]));
      });
    } finally {
      await out.close();
    }
    if (code !== 0) await fail(`\`${cmd} ${args.join(' ')}\` exited with ${code ?? sig}`, name);
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    for (;;) {
      const pid = Number.parseInt((await readFile(pidFile, 'utf8').catch(() => '')).trim(), 10);
      if (Number.isInteger(pid) && pid > 0) {
        const st = readStat(pid);
        if (st === undefined || st.state === 'Z') await fail(`${name} (pid ${pid}) died right after starting`, name);
        const d: Daemon = { name, pid, starttime: st?.starttime ?? '' };
        daemons.push(d);
        publish(liveEntry);
        return d;
      }
      if (Date.now() > deadline) await fail(`no pid file ${pidFile}`, name);
      await sleep(POLL_MS / 2);
    }
  };

  /** How often the mon has refused a message for its zero fsid: the race seen from the mon's side. */
  const monRefusals = async (): Promise<number> => {
    const text = await readFile(join(dir, 'log', 'mon.a.log'), 'utf8').catch(() => '');
    return text.split('on fsid 00000000-0000-0000-0000-000000000000').length - 1;
  };

  /**
   * Runs `start` (which launches daemon `name` and waits for it), starting again when the daemon
   * died of the fsid race; any other failure is thrown at once.
   */
  const startDaemon = async (name: string, start: () => Promise<void>): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const refusedBefore = await monRefusals();
      try {
        await start();
        return;
      } catch (err) {
        const log = await tailFile(join(dir, 'log', `${name}.log`), LOG_TAIL_BYTES);
        const race = FSID_RACE.test(`${err instanceof Error ? err.message : ''}\n${log}`) || (await monRefusals()) > refusedBefore;
        if (attempt >= FSID_RACE_TRIES || !(err instanceof CephStartError) || !race) throw err;
        for (const d of daemons.filter((x) => x.name === name)) {
          await stopDaemon(d);
          forget(d);
        }
        console.error(`ceph: ${name} hit the "wrong fsid" race, starting it again`);
      }
    }
  };

  const ceph = (args: string[]): Promise<RunResult> => run('ceph', ['--connect-timeout', '10', ...args], env);

  const RGW = 'client.rgw.a';
  const launchRgw = (): Promise<void> =>
    startDaemon(RGW, async () => {
      const d = await launch(RGW, 'radosgw', ['-n', RGW]);
      await waitFor(`radosgw to listen on port ${rgwPort}`, () => listensOn(d.pid, rgwPort), RGW);
    });
  const stopRgw = async (): Promise<void> => {
    for (const d of daemons.filter((x) => x.name === RGW)) {
      await stopDaemon(d);
      forget(d);
    }
  };

  try {
    const bins = ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin'];
    const missing = [...REQUIRED_COMMANDS, ...(cephfs ? CEPHFS_COMMANDS : [])].filter((c) => !bins.some((p) => existsSync(join(p, c))));
    if (missing.length > 0) await fail(`missing commands ${missing.join(', ')}: run scripts/test-deps.sh (npm test's pretest)`);

    const [monPort, port] = await freePorts(2);
    if (monPort === undefined || port === undefined) throw new Error('no free ports');
    rgwPort = port;
    const fsid = randomUUID();
    for (const sub of ['run', 'log', 'mon', 'osd', 'mds/ceph-a']) await mkdir(join(dir, sub), { recursive: true });
    await writeFile(conf, cephConf({ dir, fsid, monPort, rgwPort }));

    // 1. mon
    const keyring = join(dir, 'keyring');
    const monmap = join(dir, 'monmap');
    await must('ceph-authtool', ['--create-keyring', keyring, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
    await must('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v1:127.0.0.1:${monPort}]`, monmap]);
    await must('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', monmap, '--keyring', keyring], 'mon.a');
    const mon = await launch('mon.a', 'ceph-mon', ['-i', 'a']);
    await waitFor(`the mon to listen on port ${monPort}`, () => listensOn(mon.pid, monPort), 'mon.a');
    await waitFor('the mon to answer', async () => (await ceph(['health'])).code === 0, 'mon.a');
    mark('mon');

    // 2. osd, placed in the CRUSH map by hand (see [osd] in the config)
    const osdUuid = randomUUID();
    const osdId = (await must('ceph', ['osd', 'new', osdUuid], 'mon.a')).trim();
    if (!/^\d+$/.test(osdId)) await fail(`\`ceph osd new\` printed ${JSON.stringify(osdId)}`, 'mon.a');
    const osdName = `osd.${osdId}`;
    await mkdir(join(dir, 'osd', `ceph-${osdId}`), { recursive: true });
    await must('ceph-osd', ['-i', osdId, '--mkfs', '--osd-uuid', osdUuid], osdName);
    await must('ceph', ['osd', 'crush', 'add', osdName, '1', 'root=default'], 'mon.a');
    await startDaemon(osdName, async () => {
      await launch(osdName, 'ceph-osd', ['-i', osdId]);
      await waitFor(
        `${osdName} to be up`,
        async () => {
          const r = await ceph(['osd', 'dump', '-f', 'json']);
          if (r.code !== 0) return false;
          const dump = JSON.parse(r.stdout) as { osds?: { osd: number; up: number }[] };
          return dump.osds?.some((o) => String(o.osd) === osdId && o.up === 1) === true;
        },
        osdName,
      );
    });
    mark('osd');

    // 3. radosgw + test user
    await launchRgw();
    await must(
      'radosgw-admin',
      [
        'user', 'create',
        `--uid=${CEPH_S3_USER}`,
        '--display-name=davgate tests',
        `--access-key=${CEPH_S3_ACCESS_KEY}`,
        `--secret-key=${CEPH_S3_SECRET_KEY}`,
      ],
      RGW,
    );
    mark('s3');

    // 4. CephFS
    if (mountPoint !== undefined) {
      await must('ceph', ['osd', 'pool', 'create', 'cephfs_metadata', '8'], 'mon.a');
      await must('ceph', ['osd', 'pool', 'create', 'cephfs_data', '8'], 'mon.a');
      await must('ceph', ['fs', 'new', 'cephfs', 'cephfs_metadata', 'cephfs_data'], 'mon.a');
      await startDaemon('mds.a', async () => {
        await launch('mds.a', 'ceph-mds', ['-i', 'a']);
        await waitFor(
          'mds.a to be up:active',
          async () => {
            const r = await ceph(['mds', 'stat', '-f', 'json']);
            if (r.code !== 0) return false;
            const stat = JSON.parse(r.stdout) as {
              fsmap?: { filesystems?: { mdsmap?: { info?: Record<string, { name?: string; state?: string }> } }[] };
            };
            return (stat.fsmap?.filesystems ?? []).some((fs) =>
              Object.values(fs.mdsmap?.info ?? {}).some((i) => i.name === 'a' && i.state === 'up:active'),
            );
          },
          'mds.a',
        );
      });
      await mkdir(mountPoint, { recursive: true });
      liveEntry.mount = mountPoint;
      publish(liveEntry);
      const fusePid = join(dir, 'run', 'client.fuse.pid');
      const fuseLog = join(dir, 'log', 'client.fuse.log');
      await startDaemon('client.fuse', async () => {
        await launch('client.fuse', 'ceph-fuse', ['--pid-file', fusePid, '--log-file', fuseLog, '-n', 'client.admin', mountPoint], fusePid);
        await waitFor(`the ceph-fuse mount at ${mountPoint}`, async () => isMountPoint(mountPoint), 'client.fuse');
      });
      mark('cephfs');
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  const total = ((performance.now() - t0) / 1000).toFixed(2);
  console.error(`ceph: started in ${total} s (${marks.join(', ')}) in ${dir}`);

  return {
    dir,
    conf,
    s3: {
      endpoint: `http://127.0.0.1:${rgwPort}`,
      accessKeyId: CEPH_S3_ACCESS_KEY,
      secretAccessKey: CEPH_S3_SECRET_KEY,
      region: 'us-east-1',
    },
    ...(mountPoint !== undefined ? { cephfsMount: mountPoint } : {}),
    pids: () => daemons.map((d) => d.pid),
    stop: async () => {
      const s0 = performance.now();
      const already = stopped !== undefined;
      await stopAll();
      if (!already) console.error(`ceph: stopped in ${((performance.now() - s0) / 1000).toFixed(2)} s (${stopMarks.join(', ')})`);
    },
    log: async () => logSnapshot ?? (await logTails(LOG_SNAPSHOT_BYTES)),
    stopRgw: async () => {
      if (stopped !== undefined) throw new Error('ceph: the cluster is stopped');
      await stopRgw();
    },
    startRgw: async () => {
      if (stopped !== undefined) throw new Error('ceph: the cluster is stopped');
      if (daemons.some((d) => d.name === RGW && isRunning(d))) return;
      await stopRgw(); // forget a radosgw that died by itself
      const r0 = performance.now();
      await launchRgw();
      console.error(`ceph: radosgw restarted in ${((performance.now() - r0) / 1000).toFixed(2)} s`);
    },
  };
}
