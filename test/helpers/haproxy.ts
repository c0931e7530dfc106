// Debian's haproxy (scripts/test-deps.sh) in front of several gateways, as an operator would run
// it: round robin, health-checked on each gateway's admin /healthz, a failed connection retried
// on another server. Callers call stop() themselves (usually in `after`).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canConnect, freePort, sleep } from './dav-servers.js';
import { reapOnExit } from './reaper.js';

export const HAPROXY = '/usr/sbin/haproxy';

export function haveHaproxy(): boolean {
  return existsSync(HAPROXY);
}

export interface Backend { url: string; adminUrl: string }

export interface Haproxy {
  /** The balanced WebDAV URL, ends with '/'. */
  readonly url: string;
  output(): string;
  stop(): Promise<void>;
}

const hostPort = (u: string) => new URL(u).host;

function config(port: number, backends: Backend[]): string {
  const servers = backends.map((b, i) => `  server g${i} ${hostPort(b.url)} check port ${new URL(b.adminUrl).port} inter 500ms fall 2 rise 1`);
  return `global
  maxconn 1024
defaults
  mode http
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  retries 3
  option redispatch
  retry-on conn-failure empty-response response-timeout
frontend dav
  bind 127.0.0.1:${port}
  default_backend gateways
backend gateways
  balance roundrobin
  option httpchk GET /healthz
${servers.join('\n')}
`;
}

/** `configFor` (port → config text) replaces the round-robin config, e.g. with localHaproxyConfig. */
export async function startHaproxy(backends: Backend[], configFor?: (port: number) => Promise<string> | string): Promise<Haproxy> {
  const dir = await mkdtemp(join(tmpdir(), 'davgate-haproxy-'));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const file = join(dir, 'haproxy.cfg');
    await writeFile(file, configFor ? await configFor(port) : config(port, backends));
    const child: ChildProcess = spawn(HAPROXY, ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.once('exit', reapOnExit(child.pid));
    let out = '';
    child.stdout?.on('data', (b: Buffer) => { out = (out + b.toString()).slice(-20_000); });
    child.stderr?.on('data', (b: Buffer) => { out = (out + b.toString()).slice(-20_000); });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && child.exitCode === null && !(await canConnect(port))) await sleep(20);
    if (child.exitCode !== null) continue; // the port was taken meanwhile
    if (!(await canConnect(port))) throw new Error(`haproxy did not listen:\n${out}`);
    return {
      url: `http://127.0.0.1:${port}/`,
      output: () => out,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const done = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill('SIGTERM');
          await done;
        }
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      },
    };
  }
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  throw new Error('haproxy failed to start');
}
