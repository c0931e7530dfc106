// A real redis-server (Debian package redis-server, scripts/test-deps.sh) on a free loopback
// port, without persistence, in a temp directory. It can be stopped and started again on the
// same port, as an outage and a recovery. Callers call stop() themselves (usually in `after`).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect, freePort, sleep } from './dav-servers.js';
import { reapOnExit } from './reaper.js';

export const REDIS_SERVER = '/usr/bin/redis-server';

export function haveRedis(): boolean {
  return existsSync(REDIS_SERVER);
}

export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  /** Stop the server (the port stays ours for `start`). */
  down(): Promise<void>;
  /** Start it again on the same port, empty. */
  up(): Promise<void>;
  /** Stop it for good and remove its directory. */
  stop(): Promise<void>;
}

async function launch(port: number, dir: string): Promise<ChildProcess | undefined> {
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'ignore', 'ignore'] });
  const unreap = reapOnExit(child.pid);
  child.once('exit', unreap);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return undefined;
    if (await canConnect(port)) return child;
    await sleep(20);
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not listen on ${port} within 10 s`);
}

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL'); // an outage, not a shutdown: no chance to say goodbye
  await done;
}

export async function startRedis(): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'davgate-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    port = await freePort();
    child = await launch(port, dir);
  }
  if (!child) {
    await rm(dir, { recursive: true, force: true });
    throw new Error('redis-server failed to start');
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    down: async () => { await kill(child); child = undefined; },
    up: async () => {
      if (child) return;
      for (let attempt = 0; attempt < 50 && !child; attempt++) {
        child = await launch(port, dir);
        if (!child) await sleep(100); // the port may linger a moment
      }
      if (!child) throw new Error(`redis-server could not start again on ${port}`);
    },
    stop: async () => {
      await kill(child);
      child = undefined;
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}
