// A cache disk that fails writes (full, read-only) is bypassed: right bytes straight from the
// upstream, a metric and a log line say so, and the disk is tried again later. An upstream disk
// that is full answers 507 and changes nothing. Real file systems: small tmpfs mounts (root).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeDir, removeDir, sleep, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

/** Why tmpfs mounts cannot be made here, or undefined. */
function cannotMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to mount a small tmpfs';
  const probe = spawnSync('sh', ['-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; r=$?; rmdir "$d"; exit $r']);
  return probe.status === 0 ? undefined : 'mount -t tmpfs is not permitted here';
}
const skip = cannotMount();

const mount = (dir: string, opts: string) => execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
const remount = (dir: string, opts: string) => execFileSync('mount', ['-o', `remount,${opts}`, dir]);
const umount = (dir: string) => spawnSync('umount', ['-l', dir]);
const sha = (b: Buffer | ArrayBuffer) => createHash('sha256').update(Buffer.from(b as ArrayBuffer)).digest('hex');
const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

describe('cache disk faults', { skip }, () => {
  let dir: string;
  let cacheDir: string;
  let gw: GatewayProcess;
  const big = Buffer.alloc(2 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i);

  before(async () => {
    dir = await freeDir('davgate-diskfault');
    cacheDir = join(dir, 'cache');
    await mkdir(cacheDir);
    mount(cacheDir, 'size=256k,mode=0700'); // room for a few 64 KiB blocks, then ENOSPC
    await writeFile(join(dir, 'c.yaml'), 'cache:\n  diskRetryAfter: 1s\n  memoryBytes: 0\n');
    gw = await startGatewayProcess({ cache: cacheDir, args: ['-c', join(dir, 'c.yaml'), '--block-size', '64KiB', '--cache-max-bytes', '64MiB', '--log-level', 'info'] });
    await writeFile(join(gw.upstreamDir, 'big.bin'), big);
  });
  after(async () => {
    await gw?.stop();
    umount(cacheDir);
    await removeDir(dir);
  });

  test('a full cache disk: every read has the right bytes, the disk is bypassed, metric and log say so', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(gw.url + 'big.bin');
      assert.equal(res.status, 200);
      assert.equal(sha(await res.arrayBuffer()), sha(big), `read ${i} has wrong bytes`);
    }
    const m = await (await fetch(gw.adminUrl + 'metrics')).text();
    assert.ok(metric(m, 'davgate_cache_disk_bypasses_total') >= 1, 'no bypass counted');
    assert.match(gw.stdout(), /the cache disk fails writes/);
    assert.doesNotMatch(m, /^davgate_requests_total\{method="GET",status="5\d\d"\}/m);
  });

  test('read-only, then writable again: bypassed meanwhile, blocks kept once the disk takes them', async () => {
    remount(cacheDir, 'ro');
    await writeFile(join(gw.upstreamDir, 'ro.bin'), big.subarray(0, 512 * 1024));
    const res = await fetch(gw.url + 'ro.bin');
    assert.equal(sha(await res.arrayBuffer()), sha(big.subarray(0, 512 * 1024)));
    remount(cacheDir, 'rw,size=8m');
    await sleep(1200); // diskRetryAfter
    await writeFile(join(gw.upstreamDir, 'later.bin'), big.subarray(0, 256 * 1024));
    const first = await fetch(gw.url + 'later.bin');
    assert.equal(sha(await first.arrayBuffer()), sha(big.subarray(0, 256 * 1024)));
    let m = '';
    for (let i = 0; i < 50; i++) {
      m = await (await fetch(gw.adminUrl + 'metrics')).text();
      if (metric(m, 'davgate_cache_disk_bypassed') === 0 && metric(m, 'davgate_cache_blocks') >= 4) break;
      await sleep(100);
    }
    assert.equal(metric(m, 'davgate_cache_disk_bypassed'), 0, 'still bypassed after the disk came back');
    assert.ok(metric(m, 'davgate_cache_blocks') >= 4, 'no block kept after the disk came back');
    assert.match(gw.stdout(), /the cache disk takes blocks again/);
  });
});

describe('a full upstream disk', { skip }, () => {
  let dir: string;
  let root: string;
  let gw: GatewayProcess;
  before(async () => {
    dir = await freeDir('davgate-upfull');
    root = join(dir, 'root');
    await mkdir(root);
    mount(root, 'size=1m');
    await writeFile(join(root, 'keep.txt'), 'the old version\n');
    gw = await startGatewayProcess({ upstream: root, args: ['--log-level', 'warn'] });
  });
  after(async () => {
    await gw?.stop();
    umount(root);
    await removeDir(dir);
  });

  test('a PUT larger than the free space: 507, the old version intact, nothing left behind', async () => {
    const res = await fetch(gw.url + 'keep.txt', { method: 'PUT', body: Buffer.alloc(3 * 1024 * 1024, 1) });
    assert.equal(res.status, 507, await res.text());
    assert.equal(await readFile(join(root, 'keep.txt'), 'utf8'), 'the old version\n');
    const fresh = await fetch(gw.url + 'new.bin', { method: 'PUT', body: Buffer.alloc(3 * 1024 * 1024, 2) });
    assert.equal(fresh.status, 507);
    const names = await readdir(root);
    assert.deepEqual(names.filter((n) => n !== '.davgate-tmp-uploads').sort(), ['keep.txt']);
    assert.deepEqual(await readdir(join(root, '.davgate-tmp-uploads')).catch(() => []), [], 'a partial upload was left');
    assert.equal(await (await fetch(gw.url + 'keep.txt')).text(), 'the old version\n');
  });
});
