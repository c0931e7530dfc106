// `davgate cache stats|verify|purge|warm` on a real cache directory: stopped (the CLI works on
// the directory itself) and with a gateway running on it (the CLI asks its admin listener, and
// never opens the cache a second time). Run as a user runs it: the bin itself, by its shebang.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAIN_JS, freeDir, removeDir, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

interface Run { code: number | null; stdout: string; stderr: string }

function davgate(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(MAIN_JS, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`davgate ${args.join(' ')}: no exit within ${timeoutMs} ms`)); }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

async function json<T>(args: string[]): Promise<T> {
  const r = await davgate([...args, '--json']);
  assert.equal(r.code, 0, `davgate ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Block files under the cache's blocks/<shard>/<key>/ directories. */
async function blockFiles(cache: string): Promise<string[]> {
  const out: string[] = [];
  const dirs = async (d: string) => (await readdir(d, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => join(d, e.name));
  for (const s of await dirs(join(cache, 'blocks'))) for (const k of await dirs(s)) for (const f of await readdir(k)) out.push(join(k, f));
  return out;
}

/** A block file whose data starts with the fill byte of one of `files`. */
function ofFile(blocks: string[], fill: number): string {
  const f = blocks.find((b) => readFileSync(b).subarray(0, 4).equals(Buffer.alloc(4, fill)));
  assert.ok(f, `no block filled with ${fill}`);
  return f;
}

async function corrupt(file: string): Promise<void> {
  const buf = await readFile(file);
  buf[10] = buf[10]! ^ 0xff;
  await writeFile(file, buf);
}

interface Stats { running: boolean; bytes: number; blocks: number; limitBytes: number; nodes: number | null; blockHitRatio: number | null; oldestBlockUsedAt: string | null }
interface Usage { path: string; kind: string; files: number; bytes: number; cachedBytes: number; cachedFiles: number }
interface Report { blocks: number; ok: number; corrupt: string[]; missing: string[]; orphans: string[] }

const BLOCK = 64 * 1024;
const files: Record<string, Buffer> = {
  'a.bin': Buffer.alloc(3 * BLOCK + 100, 1),
  'tree/b.bin': Buffer.alloc(2 * BLOCK, 2),
  'tree/deeper/c.txt': Buffer.from('hello\n'),
};

describe('davgate cache CLI', () => {
  let upstream: string;
  let cache: string;
  let base: string[];

  before(async () => {
    upstream = await freeDir('davgate-cli-up');
    cache = await freeDir('davgate-cli-cache');
    for (const [name, data] of Object.entries(files)) {
      await mkdir(join(upstream, name, '..'), { recursive: true });
      await writeFile(join(upstream, name), data);
    }
    base = ['--upstream', upstream, '--cache', cache, '--block-size', '64KiB'];
  });
  after(async () => {
    await removeDir(upstream);
    await removeDir(cache);
  });

  test('--version prints the package version', async () => {
    const r = await davgate(['--version']);
    assert.equal(r.code, 0);
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim(), pkg.version);
  });

  describe('on a stopped cache directory', () => {
    test('stats of an empty cache', async () => {
      const s = await json<Stats>(['cache', 'stats', ...base]);
      assert.equal(s.running, false);
      assert.equal(s.blocks, 0);
      assert.equal(s.oldestBlockUsedAt, null);
      assert.equal(s.limitBytes, 10 * 1024 ** 3);
    });

    test('stats PATH of a stopped cache: nothing of the tree is cached yet', async () => {
      const u = await json<Usage>(['cache', 'stats', '/tree', ...base]);
      assert.deepEqual(u, { path: '/tree', kind: 'dir', files: 2, bytes: 2 * BLOCK + 6, cachedBytes: 0, cachedFiles: 0 });
    });

    test('warm reads the whole tree into the cache', async () => {
      const w = await json<{ files: number; totalBytes: number; doneBytes: number; failed: unknown[] }>(['cache', 'warm', '/', ...base]);
      const total = Object.values(files).reduce((n, b) => n + b.length, 0);
      assert.deepEqual([w.files, w.totalBytes, w.doneBytes, w.failed.length], [3, total, total, 0]);
      const s = await json<Stats>(['cache', 'stats', ...base]);
      assert.equal(s.blocks, 4 + 2 + 1);
      assert.ok(s.bytes >= total);
      assert.ok(s.oldestBlockUsedAt && Date.now() - Date.parse(s.oldestBlockUsedAt) < 120_000);
    });

    test('verify finds a damaged block and a stray file, changes nothing, exits 1', async () => {
      const blocks = await blockFiles(cache);
      const victim = ofFile(blocks, 1); // a block of a.bin
      await corrupt(victim);
      await writeFile(join(cache, 'blocks', 'stray-file'), 'x');
      const r = await davgate(['cache', 'verify', ...base, '--json']);
      assert.equal(r.code, 1, r.stderr);
      const report = JSON.parse(r.stdout) as Report;
      assert.deepEqual(report.corrupt, [victim]);
      assert.deepEqual(report.orphans, [join(cache, 'blocks', 'stray-file')]);
      assert.equal(report.ok, blocks.length - 1);
      assert.equal((await blockFiles(cache)).length, blocks.length, 'verify without --repair removed a file');
      const human = await davgate(['cache', 'verify', ...base]);
      assert.match(human.stdout, /1 corrupt/);
      assert.match(human.stdout, /--repair/);
    });

    test('verify --repair drops them; the next verify is clean', async () => {
      const before = (await blockFiles(cache)).length;
      const r = await davgate(['cache', 'verify', '--repair', ...base, '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as Report).corrupt.length, 1);
      assert.equal((await blockFiles(cache)).length, before - 1);
      const again = await json<Report>(['cache', 'verify', ...base]);
      assert.deepEqual([again.corrupt.length, again.orphans.length, again.missing.length, again.ok], [0, 0, 0, before - 1]);
    });

    test('purge PATH drops that subtree only; purge drops everything', async () => {
      const before = await json<Stats>(['cache', 'stats', ...base]);
      const p = await json<{ purgedNodes: number }>(['cache', 'purge', '/tree', ...base]);
      assert.equal(p.purgedNodes, 2);
      const after = await json<Stats>(['cache', 'stats', ...base]);
      assert.equal(after.blocks, before.blocks - 3);
      await json(['cache', 'purge', ...base]);
      assert.equal((await json<Stats>(['cache', 'stats', ...base])).blocks, 0);
    });

    test('errors are one clear line and a non-zero exit', async () => {
      const r = await davgate(['cache', 'warm', '/no-such-dir', ...base]);
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.match(r.stderr, /^davgate: .*not found/);
      const bad = await davgate(['cache', 'warm', '/', ...base, '--concurrency', '0']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /concurrency/);
    });
  });

  describe('with a gateway running on the cache directory', () => {
    let gw: GatewayProcess;
    before(async () => {
      gw = await startGatewayProcess({ upstream, cache, args: ['--block-size', '64KiB', '--log-level', 'warn'] });
    });
    after(async () => { await gw?.stop(); });

    test('stats come from the gateway, with nodes and hit ratios', async () => {
      const res = await fetch(gw.url + 'a.bin');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), files['a.bin']);
      const s = await json<Stats>(['cache', 'stats', ...base]);
      assert.equal(s.running, true);
      assert.ok((s.nodes ?? 0) >= 1);
      assert.equal(typeof s.blockHitRatio, 'number');
      assert.equal(readFileSync(join(cache, 'LOCK'), 'utf8').trim(), String(gw.pid), 'the CLI took the cache from the gateway');
    });

    test('stats PATH through the gateway: what is cached of one file and of a tree', async () => {
      await json(['cache', 'purge', ...base]);
      const res = await fetch(gw.url + 'tree/deeper/c.txt');
      assert.equal(await res.text(), 'hello\n');
      await fetch(gw.url + 'a.bin', { headers: { range: 'bytes=0-10' } }).then((r) => r.arrayBuffer());
      await new Promise((r) => setTimeout(r, 200)); // the block is written to disk after it was served
      assert.deepEqual(await json<Usage>(['cache', 'stats', '/tree', ...base]), { path: '/tree', kind: 'dir', files: 2, bytes: 2 * BLOCK + 6, cachedBytes: 6, cachedFiles: 1 });
      assert.deepEqual(await json<Usage>(['cache', 'stats', '/a.bin', ...base]), { path: '/a.bin', kind: 'file', files: 1, bytes: 3 * BLOCK + 100, cachedBytes: BLOCK, cachedFiles: 0 });
      const text = await davgate(['cache', 'stats', '/a.bin', ...base]);
      assert.match(text.stdout, /cached +64\.0 KiB of 192\.1 KiB \(33\.3 %\)/);
      assert.notEqual((await davgate(['cache', 'stats', '/nothing-here', ...base])).code, 0);
    });

    test('warm through the gateway, then verify and repair a block damaged under it', async () => {
      await json(['cache', 'warm', '/', ...base]);
      const s = await json<Stats>(['cache', 'stats', ...base]);
      assert.equal(s.blocks, 7);
      const blocks = await blockFiles(cache);
      const victim = ofFile(blocks, 2); // a block of tree/b.bin
      await corrupt(victim);
      const r = await davgate(['cache', 'verify', ...base, '--json']);
      assert.equal(r.code, 1);
      assert.deepEqual((JSON.parse(r.stdout) as Report).corrupt, [victim]);
      assert.equal((await davgate(['cache', 'verify', '--repair', ...base])).code, 0);
      assert.equal((await json<Stats>(['cache', 'stats', ...base])).blocks, 6);
      // The gateway fetches the dropped block again: the right bytes, never the damaged ones.
      const res = await fetch(gw.url + 'tree/b.bin');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), files['tree/b.bin']);
    });

    test('pin and unpin through the gateway: read in, kept in pins.json, reported', async () => {
      const pinned = await json<{ paths: string[]; pinnedFiles: number; pinnedBytes: number }>(['cache', 'pin', '/tree', ...base]);
      assert.deepEqual(pinned.paths, ['/tree']);
      assert.equal(pinned.pinnedFiles, 2);
      assert.equal(pinned.pinnedBytes > 2 * BLOCK, true, 'both files read in (with their checksum tables)');
      assert.deepEqual(JSON.parse(readFileSync(join(cache, 'pins.json'), 'utf8')), { paths: ['/tree'] });
      const text = await davgate(['cache', 'unpin', '/tree', ...base]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /unpinned \/tree/);
      assert.deepEqual(JSON.parse(readFileSync(join(cache, 'pins.json'), 'utf8')), { paths: [] });
    });

    test('purge through the gateway empties the cache it holds', async () => {
      const p = await json<{ purgedBlocks: number }>(['cache', 'purge', ...base]);
      assert.ok(p.purgedBlocks >= 6);
      assert.equal((await json<Stats>(['cache', 'stats', ...base])).blocks, 0);
      assert.equal((await blockFiles(cache)).length, 0);
    });
  });
});
