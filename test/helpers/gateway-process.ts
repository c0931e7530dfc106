// Starts the real davgate CLI (dist/src/main.js serve ...) as a child process for e2e tests.
// Nothing is registered globally: callers call stop() themselves (usually in `after`).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { reapOnExit } from './reaper.js';

/** Compiled CLI entry point, located relative to this compiled helper (dist/test/helpers/). */
export const MAIN_JS = fileURLToPath(new URL('../../src/main.js', import.meta.url));

const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const MAX_LOG_CHARS = 1_000_000;

export interface GatewayProcessOptions {
  /** Upstream directory; a temp dir is created (and removed on stop) when absent. */
  upstream?: string;
  /** Cache directory; a temp dir is created (and removed on stop) when absent. */
  cache?: string;
  /** Extra CLI arguments appended after the defaults (e.g. ['--ttl', '0']). */
  args?: string[];
  /** Extra environment variables for the child. */
  env?: Record<string, string>;
  /** Run `node <nodeArgs> main.js` instead of the bin (its shebang flags are then not applied). */
  nodeArgs?: string[];
  /** Run the bin itself, as a user does (its shebang sets node's flags), not `node main.js`. */
  asBin?: boolean;
  /** How long to wait for the listening lines (default 15 s; a scan of a huge cache takes longer). */
  startTimeoutMs?: number;
}

export interface GatewayProcess {
  /** WebDAV base URL, ends with '/'. */
  url: string;
  /** Admin base URL, ends with '/'. */
  adminUrl: string;
  upstreamDir: string;
  cacheDir: string;
  pid: number;
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
  /** Everything the child wrote to stdout so far. */
  stdout(): string;
  /** True while the child has not exited. */
  alive(): boolean;
  /** SIGTERM, wait for exit (SIGKILL after 5 s), remove temp dirs created by the helper. */
  stop(): Promise<void>;
}

/** Creates a fresh directory under os.tmpdir(). */
export async function freeDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
}

/** Removes a directory tree, ignoring errors. */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when the child has exited (immediately if it already has). */
export function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM (or `signal`), then SIGKILL after `graceMs` if still running. */
export async function terminate(child: ChildProcess, graceMs = STOP_GRACE_MS, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = waitForExit(child);
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs);
    }),
  ]);
  if (timer) clearTimeout(timer);
  if (timedOut) {
    child.kill('SIGKILL');
    await exited;
  }
}

function appendCapped(buf: string, chunk: string): string {
  const out = buf + chunk;
  return out.length > MAX_LOG_CHARS ? out.slice(out.length - MAX_LOG_CHARS) : out;
}

function withSlash(u: string): string {
  return u.endsWith('/') ? u : `${u}/`;
}

const SERVING_RE = /davgate: serving WebDAV at (https?:\/\/\S+)/;
const ADMIN_RE = /davgate: admin at (http:\/\/\S+)/;

export async function startGatewayProcess(opts: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const ownDirs: string[] = [];
  const upstreamDir = opts.upstream ?? (await freeDir('davgate-upstream-'));
  if (opts.upstream === undefined) ownDirs.push(upstreamDir);
  const cacheDir = opts.cache ?? (await freeDir('davgate-cache-'));
  if (opts.cache === undefined) ownDirs.push(cacheDir);

  const cleanupDirs = async (): Promise<void> => {
    for (const d of ownDirs) await removeDir(d);
  };

  const asBin = opts.asBin && !opts.nodeArgs;
  const argv = [
    ...(asBin ? [] : [...(opts.nodeArgs ?? []), MAIN_JS]),
    'serve',
    '--upstream', upstreamDir,
    '--cache', cacheDir,
    '--listen', '127.0.0.1:0',
    '--admin-listen', '127.0.0.1:0',
    ...(opts.args ?? []),
  ];

  let child: ChildProcess;
  try {
    child = spawn(asBin ? MAIN_JS : process.execPath, argv, {
      env: { ...process.env, ...(opts.env ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.once('exit', reapOnExit(child.pid));
  } catch (err) {
    await cleanupDirs();
    throw err;
  }

  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => {
    err = appendCapped(err, c);
  });

  const alive = (): boolean => child.exitCode === null && child.signalCode === null;

  const ready = new Promise<{ url: string; adminUrl: string }>((resolve, reject) => {
    let url: string | undefined;
    let adminUrl: string | undefined;
    const describe = (why: string): Error =>
      new Error(
        `davgate did not start: ${why}\n` +
          `command: ${process.execPath} ${argv.join(' ')}\n` +
          `--- stdout ---\n${out}\n--- stderr ---\n${err}`,
      );
    const wait = opts.startTimeoutMs ?? START_TIMEOUT_MS;
    const timer = setTimeout(() => reject(describe(`no listening lines within ${wait} ms`)), wait);
    child.stdout?.on('data', (c: string) => {
      out = appendCapped(out, c);
      url ??= SERVING_RE.exec(out)?.[1];
      adminUrl ??= ADMIN_RE.exec(out)?.[1];
      if (url !== undefined && adminUrl !== undefined) {
        clearTimeout(timer);
        resolve({ url: withSlash(url), adminUrl: withSlash(adminUrl) });
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(describe(`spawn error: ${e.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // The stderr stream may still hold buffered data; give it a tick to drain.
      setImmediate(() => reject(describe(`exited early with code ${code} signal ${signal}`)));
    });
  });

  let urls: { url: string; adminUrl: string };
  try {
    urls = await ready;
  } catch (e) {
    await terminate(child, 1000);
    await cleanupDirs();
    throw e;
  }

  let stopping: Promise<void> | undefined;
  return {
    url: urls.url,
    adminUrl: urls.adminUrl,
    upstreamDir,
    cacheDir,
    pid: child.pid ?? -1,
    stderr: () => err,
    stdout: () => out,
    alive,
    stop: () => {
      stopping ??= (async () => {
        await terminate(child, STOP_GRACE_MS);
        await cleanupDirs();
      })();
      return stopping;
    },
  };
}
