// `npm run bench`: davgate side by side with `rclone serve webdav --vfs-cache-mode full` on the
// same generated data, on loopback, in one run. Prints a markdown table with ratios and writes
// JSON under bench/results/. Not part of `npm test`. Issue 6 extends the rows and servers.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

const MiB = 1024 * 1024;
const quick = process.argv.includes('--quick');
const RUNS = quick ? 3 : 5;
const WRK_SECONDS = quick ? 3 : 8;

function need(cmd: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0) return;
  console.error(`installing ${pkg} (apt-get)`);
  spawnSync('apt-get', ['update'], { stdio: 'ignore' });
  const r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) throw new Error(`cannot install ${pkg}`);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitFor(url: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try { await fetch(url, { method: 'OPTIONS' }); return; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  throw new Error(`${url} did not come up`);
}

/** Time a request whose body is discarded; returns seconds. */
function timed(url: string, method = 'GET', headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    request(url, { method, headers }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(Number(process.hrtime.bigint() - t0) / 1e9));
    }).on('error', reject).end();
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function medianOf(n: number, f: () => Promise<number>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) xs.push(await f());
  return median(xs);
}

function wrk(url: string): number {
  const r = spawnSync('wrk', ['-t1', '-c16', `-d${WRK_SECONDS}s`, url], { encoding: 'utf8' });
  const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(`wrk failed: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

interface Row { name: string; unit: string; better: 'higher' | 'lower'; davgate: number; rclone: number }

async function main(): Promise<void> {
  need('wrk', 'wrk');
  need('rclone', 'rclone');
  const work = await mkdtemp(join(tmpdir(), 'davgate-bench-'));
  const data = join(work, 'data');
  await mkdir(join(data, 'many'), { recursive: true });
  await writeFile(join(data, 'small.bin'), randomBytes(4096));
  const bigSize = (quick ? 64 : 256) * MiB;
  await writeFile(join(data, 'big.bin'), randomBytes(bigSize));
  const entries = quick ? 1000 : 10_000;
  for (let i = 0; i < entries; i++) await writeFile(join(data, 'many', `f${i}.txt`), String(i));
  const procs: ChildProcess[] = [];
  try {
    const dPort = await freePort();
    const rPort = await freePort();
    procs.push(spawn(process.execPath, [new URL('../src/main.js', import.meta.url).pathname, 'serve', '--upstream', data, '--cache', join(work, 'cache'),
      '--listen', `127.0.0.1:${dPort}`, '--admin-listen', '127.0.0.1:0', '--log-level', 'warn'], { stdio: 'ignore' }));
    procs.push(spawn('rclone', ['serve', 'webdav', data, '--addr', `127.0.0.1:${rPort}`, '--vfs-cache-mode', 'full',
      '--cache-dir', join(work, 'rclone-cache'), '--config', '/dev/null'], { stdio: 'ignore' }));
    const servers = { davgate: `http://127.0.0.1:${dPort}/`, rclone: `http://127.0.0.1:${rPort}/` };
    await waitFor(servers.davgate);
    await waitFor(servers.rclone);
    const rows: Row[] = [];
    const measure = async (name: string, unit: string, better: Row['better'], f: (base: string) => Promise<number>) => {
      rows.push({ name, unit, better, davgate: await f(servers.davgate), rclone: await f(servers.rclone) });
    };
    await measure(`GET ${bigSize / MiB} MiB cold`, 's', 'lower', (b) => timed(b + 'big.bin'));
    await measure(`GET ${bigSize / MiB} MiB hot`, 'GB/s', 'higher', async (b) => bigSize / 1e9 / await medianOf(RUNS, () => timed(b + 'big.bin')));
    await measure('GET 4 KiB hot (wrk -t1 -c16)', 'req/s', 'higher', async (b) => { await timed(b + 'small.bin'); return wrk(b + 'small.bin'); });
    await measure(`PROPFIND depth 1, ${entries} entries`, 's', 'lower', (b) => medianOf(RUNS, () => timed(b + 'many/', 'PROPFIND', { depth: '1' })));
    const lines = ['| benchmark | davgate | rclone | davgate vs rclone |', '|---|---|---|---|'];
    for (const r of rows) {
      const ratio = r.better === 'higher' ? r.davgate / r.rclone : r.rclone / r.davgate;
      lines.push(`| ${r.name} | ${r.davgate.toFixed(3)} ${r.unit} | ${r.rclone.toFixed(3)} ${r.unit} | ${ratio.toFixed(2)}x ${ratio >= 1 ? 'better' : 'worse'} |`);
    }
    console.log(lines.join('\n'));
    const out = new URL('./results/', new URL('../../bench/', import.meta.url));
    await mkdir(out, { recursive: true });
    const file = new URL(`bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, out);
    await writeFile(file, JSON.stringify({ date: new Date().toISOString(), quick, rows }, null, 2) + '\n');
    console.log(`results written to ${file.pathname}`);
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
