// A real Prometheus (Debian's `prometheus`) for the monitoring tests: its own config and
// storage in a temp dir, a random loopback port, stopped by the caller (and reaped at exit).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reapOnExit } from './reaper.js';
import { sleep, terminate } from './gateway-process.js';
import { freePort } from './dav-servers.js';

/** Why Prometheus cannot run here, or undefined when it can. */
export function prometheusMissing(): string | undefined {
  for (const bin of ['prometheus', 'promtool']) {
    if (spawnSync(bin, ['--version'], { stdio: 'ignore' }).error) return `${bin} is not installed (Debian package prometheus; npm test installs it as root)`;
  }
  return undefined;
}

export interface PromResult { metric: Record<string, string>; value: [number, string] }

export interface Prometheus {
  url: string;
  /** An instant query; throws with Prometheus' own message when it fails to parse or evaluate. */
  query(expr: string): Promise<PromResult[]>;
  api<T>(path: string): Promise<T>;
  log(): string;
  stop(): Promise<void>;
}

/** Start Prometheus scraping `targets` (host:port) every second, with `ruleFiles` evaluated every second. */
export async function startPrometheus(targets: string[], ruleFiles: string[] = []): Promise<Prometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'davgate-prom-'));
  const config = [
    'global:', '  scrape_interval: 1s', '  evaluation_interval: 1s',
    'rule_files:', ...ruleFiles.map((f) => `  - ${JSON.stringify(f)}`),
    'scrape_configs:', '  - job_name: davgate', '    static_configs:', `      - targets: ${JSON.stringify(targets)}`,
  ].join('\n') + '\n';
  await writeFile(join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const child = spawn('prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const unreap = reapOnExit(child.pid);
  let log = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => { log = (log + c).slice(-100_000); });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await terminate(child, 5000);
    unreap();
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) { await stop(); throw new Error(`prometheus exited: ${log}`); }
    const ok = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) { await stop(); throw new Error(`prometheus not ready within 30 s: ${log}`); }
    await sleep(200);
  }
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(url + path);
    const body = await res.json() as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`${path}: ${body.errorType}: ${body.error}`);
    return body.data;
  };
  return {
    url,
    api,
    async query(expr) {
      const data = await api<{ resultType: string; result: PromResult[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      if (data.resultType !== 'vector') throw new Error(`${expr}: expected an instant vector, got ${data.resultType}`);
      return data.result;
    },
    log: () => log,
    stop,
  };
}
