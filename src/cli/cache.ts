import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import cliProgress from 'cli-progress';
import type { Config } from '../config.js';
import { ConfigError } from '../errors.js';
import { BlockStore } from '../cachemgr/blockstore.js';
import { CacheManager } from '../cachemgr/cachemgr.js';
import { blockStats, cacheUsage, warm, type CacheStats, type CacheUsage, type WarmProgress } from '../cachemgr/maintenance.js';
import type { PinStatus } from '../cachemgr/pins.js';
import { formatBytes as bytes } from '../format.js';
import { verifyBlocks, type VerifyReport } from '../cachemgr/verify.js';
import { canonicalPath } from '../davpath.js';
import { openUpstream } from '../upstream/index.js';
import { configFrom, withConfigOptions } from './options.js';

// `davgate cache stats|verify|purge|warm`. While a gateway holds the cache directory, the
// commands ask it over its admin listener (a second writer on a cache would corrupt its
// index); on a stopped cache directory they do the work themselves.

/** Written by `serve` into the cache directory: the admin listener's URL. */
export const ADMIN_FILE = 'ADMIN';

/** A listener on 0.0.0.0 or :: is reached on loopback. */
export function reachableUrl(url: string): string {
  return url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
}

/** The admin listener of the gateway running on this cache directory, if one runs. */
async function runningGateway(config: Config, o: Record<string, unknown>): Promise<AdminTarget | undefined> {
  const token = config.admin.token;
  if (typeof o.adminUrl === 'string') return { url: o.adminUrl.replace(/\/+$/, ''), token };
  const pid = await BlockStore.owner(config.cache.dir);
  if (pid === undefined) return undefined;
  const url = (await readFile(join(config.cache.dir, ADMIN_FILE), 'utf8').catch(() => '')).trim();
  if (!url) throw new ConfigError(`a gateway (pid ${pid}) holds ${config.cache.dir} but its admin address is unknown: pass --admin-url`);
  return { url: url.replace(/\/+$/, ''), token };
}

/** The running gateway's admin listener, and the token it wants (admin.token, DAVGATE_ADMIN_TOKEN). */
interface AdminTarget { url: string; token?: string }

async function admin(target: AdminTarget, method: 'GET' | 'POST', path: string, onLine?: (line: Record<string, unknown>) => void): Promise<unknown> {
  const base = target.url;
  let res: Response;
  try {
    res = await fetch(base + path, { method, headers: target.token ? { authorization: `Bearer ${target.token}` } : {} });
  } catch (err) {
    throw new ConfigError(`cannot reach the gateway's admin listener at ${base} (${(err as Error).message})`);
  }
  if (!res.ok) {
    const body = await res.text();
    let msg = body.trim();
    try { msg = (JSON.parse(body) as { error?: string }).error ?? msg; } catch { /* plain text */ }
    throw new ConfigError(`the gateway answered ${res.status}: ${msg}`);
  }
  if (!onLine) return res.json();
  // NDJSON: progress lines, then the result; the stream is read as it comes.
  let last: Record<string, unknown> = {};
  let rest = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    rest += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = rest.indexOf('\n')) >= 0) {
      const line = JSON.parse(rest.slice(0, nl)) as Record<string, unknown>;
      rest = rest.slice(nl + 1);
      if (typeof line.error === 'string') throw new ConfigError(line.error);
      onLine(line);
      last = line;
    }
  }
  return last;
}

/** A progress bar on stderr for people; nothing for scripts (--json) or pipes. */
function progressBar(o: Record<string, unknown>, unit: string) {
  if (o.json || !process.stderr.isTTY) return { start() {}, update() {}, stop() {} };
  const bar = new cliProgress.SingleBar({
    stream: process.stderr, hideCursor: true,
    format: `{bar} {percentage}% | {valueH} of {totalH} ${unit} | {duration_formatted}`,
  }, cliProgress.Presets.shades_classic);
  return {
    start(total: number) { bar.start(total, 0, { valueH: bytes(0), totalH: bytes(total) }); },
    update(done: number) { bar.update(done, { valueH: bytes(done) }); },
    stop() { bar.stop(); },
  };
}

const pct = (r: number | null) => (r === null ? '-' : `${(r * 100).toFixed(1)} %`);

function print(o: Record<string, unknown>, json: unknown, human: string): void {
  console.log(o.json ? JSON.stringify(json, null, 2) : human);
}

/** Open the stopped cache directly (the lock file keeps a gateway from starting meanwhile). */
async function withStore<T>(config: Config, open: { readOnly: boolean; scan?: boolean }, fn: (s: BlockStore) => Promise<T>): Promise<T> {
  const c = config.cache;
  const store = new BlockStore(c.dir, { maxBytes: c.maxBytes, highWatermark: c.highWatermark, lowWatermark: c.lowWatermark });
  await store.open(open);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function withCacheManager<T>(config: Config, fn: (c: CacheManager) => Promise<T>): Promise<T> {
  const upstream = await openUpstream(config);
  const cache = await CacheManager.open(upstream, config.cache);
  try {
    return await fn(cache);
  } finally {
    await cache.close();
  }
}

async function usage(path: string, o: Record<string, unknown>): Promise<void> {
  const config = configFrom(o);
  const p = canonicalPath(path);
  const url = await runningGateway(config, o);
  const u = url
    ? await admin(url, 'GET', `/cache/stats?path=${encodeURIComponent(p)}`) as CacheUsage
    : await withCacheManager(config, (c) => cacheUsage(c, p));
  print(o, u, [
    `path        ${u.path}${u.kind === 'dir' ? '/ (a folder)' : ''}`,
    `files       ${u.files}, ${u.cachedFiles} of them cached whole`,
    `cached      ${bytes(u.cachedBytes)} of ${bytes(u.bytes)} (${pct(u.bytes ? u.cachedBytes / u.bytes : 1)})`,
  ].join('\n'));
}

async function stats(path: string | undefined, o: Record<string, unknown>): Promise<void> {
  if (path !== undefined) return usage(path, o);
  const config = configFrom(o);
  const url = await runningGateway(config, o);
  const s: CacheStats = url
    ? await admin(url, 'GET', '/cache/stats') as CacheStats
    : await withStore(config, { readOnly: true }, async (store) => ({ ...blockStats(store), running: false, nodes: null, blockHitRatio: null, byteHitRatio: null }));
  print(o, s, [
    `cache       ${s.dir}${s.running ? '  (gateway running)' : '  (no gateway running)'}`,
    `size        ${bytes(s.bytes)} of ${bytes(s.limitBytes)} (${pct(s.fill)})`,
    `blocks      ${s.blocks}`,
    `nodes       ${s.nodes ?? '-'}`,
    `block hits  ${pct(s.blockHitRatio)}`,
    `byte hits   ${pct(s.byteHitRatio)}`,
    `oldest      ${s.oldestBlockUsedAt ?? '-'}  (least recently used block)`,
  ].join('\n'));
}

async function verify(o: Record<string, unknown>): Promise<void> {
  const config = configFrom(o);
  const repair = Boolean(o.repair);
  const url = await runningGateway(config, o);
  const bar = progressBar(o, 'checked');
  let started = false;
  const onProgress = (done: number, total: number) => {
    if (!started) { bar.start(total); started = true; }
    bar.update(done);
  };
  let report: VerifyReport;
  try {
    report = url
      ? ((await admin(url, 'POST', `/cache/verify${repair ? '?repair=1' : ''}`, (l) => { if (typeof l.done === 'number') onProgress(l.done, l.total as number); })) as { report: VerifyReport }).report
      : await withStore(config, { readOnly: true, scan: true }, (store) => verifyBlocks(store, { repair, onProgress })); // strays listed, then removed by repair
  } finally {
    bar.stop();
  }
  const problems = report.corrupt.length + report.missing.length + report.orphans.length;
  const lines = [`checked ${report.blocks} blocks (${bytes(report.bytes)}): ${report.ok} ok, ${report.corrupt.length} corrupt, ${report.missing.length} missing, ${report.orphans.length} not in the index`];
  for (const [what, list] of [['corrupt', report.corrupt], ['missing', report.missing], ['not in the index', report.orphans]] as const) {
    for (const f of list.slice(0, 20)) lines.push(`  ${what}: ${f}`);
    if (list.length > 20) lines.push(`  ... and ${list.length - 20} more ${what}`);
  }
  if (problems) lines.push(repair ? 'repaired: the inconsistent entries were dropped' : 'run again with --repair to drop them');
  print(o, report, lines.join('\n'));
  // Scripts can tell a damaged cache from a sound one.
  if (problems && !repair) process.exitCode = 1;
}

async function purge(path: string | undefined, o: Record<string, unknown>): Promise<void> {
  const config = configFrom(o);
  const p = path === undefined ? undefined : canonicalPath(path);
  const url = await runningGateway(config, o);
  let result: { purgedBlocks?: number; purgedNodes?: number };
  if (url) result = await admin(url, 'POST', `/cache/purge${p === undefined ? '' : `?path=${encodeURIComponent(p)}`}`) as typeof result;
  else if (p === undefined) result = { purgedBlocks: await withStore(config, { readOnly: false }, (s) => s.dropAll()) };
  else result = { purgedNodes: await withCacheManager(config, (c) => c.purge(p)) };
  print(o, { path: p ?? null, ...result }, p === undefined
    ? `purged ${result.purgedBlocks} blocks (the whole cache)`
    : `purged ${result.purgedNodes} cached files under ${p}`);
}

async function warmCmd(path: string, o: Record<string, unknown>): Promise<void> {
  const config = configFrom(o);
  const p = canonicalPath(path);
  const concurrency = Number(o.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new ConfigError('--concurrency must be 1 to 64');
  const url = await runningGateway(config, o);
  const bar = progressBar(o, 'read');
  let result: WarmProgress;
  try {
    result = url
      ? ((await admin(url, 'POST', `/cache/warm?path=${encodeURIComponent(p)}&concurrency=${concurrency}`, (l) => {
        if (typeof l.files === 'number' && typeof l.total === 'number') bar.start(l.total);
        else if (typeof l.done === 'number') bar.update(l.done);
      })) as { result: WarmProgress }).result
      : await withCacheManager(config, (c) => warm(c, p, { concurrency, onStart: (_f, total) => bar.start(total), onProgress: (d) => bar.update(d) }));
  } finally {
    bar.stop();
  }
  const lines = [`warmed ${p}: ${result.files} files, ${bytes(result.doneBytes)} read`];
  for (const f of result.failed.slice(0, 20)) lines.push(`  failed: ${f.path}: ${f.error}`);
  print(o, result, lines.join('\n'));
  if (result.failed.length) process.exitCode = 1;
}

async function pinCmd(on: boolean, path: string, o: Record<string, unknown>): Promise<void> {
  const config = configFrom(o);
  const p = canonicalPath(path);
  const url = await runningGateway(config, o);
  const status = url
    ? await admin(url, 'POST', `/cache/${on ? 'pin' : 'unpin'}?path=${encodeURIComponent(p)}`) as PinStatus
    : await withCacheManager(config, async (c) => { await (on ? c.pins.add(p) : c.pins.remove(p)); return c.pins.status(); });
  print(o, status, [
    `${on ? 'pinned' : 'unpinned'} ${p}${url ? '' : '  (no gateway running: it reads the pins at start)'}`,
    `pinned      ${bytes(status.pinnedBytes)} of ${bytes(status.limitBytes)} allowed, ${status.pinnedFiles} files${status.overLimit ? `, ${status.overLimit} over the limit (cached, not pinned)` : ''}`,
    `paths       ${status.paths.join(', ') || '-'}  (and the rules with pin: true)`,
  ].join('\n'));
}

/** `davgate reload`: the running gateway re-reads its TLS certificate and key. */
export function reloadCommand(): Command {
  return withConfigOptions(new Command('reload').description('make the running gateway re-read its TLS certificate and key (like SIGHUP)'))
    .option('--admin-url <url>', 'admin listener of the gateway (default: found in the cache directory)')
    .action(async (o: Record<string, unknown>) => {
      const config = configFrom(o);
      const target = await runningGateway(config, o);
      if (!target) throw new ConfigError(`no gateway is running on ${config.cache.dir}`);
      const r = await admin(target, 'POST', '/reload') as { tls: boolean };
      console.log(r.tls ? 'reloaded: new connections use the certificate and key now in the files' : 'reloaded (no TLS configured)');
    });
}

export function cacheCommand(): Command {
  const cache = new Command('cache').description('inspect and manage the block cache (talks to a running gateway, or works on a stopped cache directory)');
  const sub = (name: string, description: string) => withConfigOptions(cache.command(name).description(description))
    .option('--json', 'machine-readable output')
    .option('--admin-url <url>', 'admin listener of the gateway using this cache (default: found in the cache directory)');
  sub('stats', 'size, limit, blocks, nodes, hit ratios, oldest block; with PATH, how much of that file or tree is cached')
    .argument('[path]', 'a file or folder, as a WebDAV path (e.g. /photos)')
    .action((path: string | undefined, o: Record<string, unknown>) => stats(path, o));
  sub('verify', "check every block's checksums and the index against the block directory").option('--repair', 'drop what is inconsistent')
    .action((o: Record<string, unknown>) => verify(o));
  sub('purge', 'drop cached data: of PATH and below, or everything').argument('[path]', 'a file or folder, as a WebDAV path (e.g. /photos)')
    .action((path: string | undefined, o: Record<string, unknown>) => purge(path, o));
  sub('pin', 'keep a file or a tree in the cache: never evicted, read again after each change').argument('<path>', 'a file or folder, as a WebDAV path')
    .action((path: string, o: Record<string, unknown>) => pinCmd(true, path, o));
  sub('unpin', 'let a pinned file or tree be evicted again').argument('<path>', 'a file or folder, as a WebDAV path')
    .action((path: string, o: Record<string, unknown>) => pinCmd(false, path, o));
  sub('warm', 'read a file or a tree into the cache').argument('<path>', 'a file or folder, as a WebDAV path').option('--concurrency <n>', 'files read at once', '4')
    .action((path: string, o: Record<string, unknown>) => warmCmd(path, o));
  return cache;
}
