// davfs2 mount (`mount -t davfs`, a FUSE file system driven by mount.davfs) of a real davgate
// process: copy a tree in, read it back through the mount and from the upstream directory, list,
// see upstream changes, overwrite, rename and delete through the mount, then unmount (davfs2 waits
// for its uploads), mount again and read everything back.
//
// davfs2 runs with a private configuration: its own cache directory, an empty secrets entry (no
// credentials, no prompt), use_locks 1 (every write is LOCK, PUT, UNLOCK), delay_upload 0 (upload on
// close) and buf_size 256. The last one matters: since Linux 6.16 the kernel asks FUSE file systems
// for directory listings of up to 32 KiB and more, and davfs2 1.6/1.7.1 with its default 16 KiB
// buffer answers every FUSE_READDIR with EINVAL ("ls: reading directory: Invalid argument").
// A larger buffer is the documented workaround. When listing still fails, the tests skip and say so.
//
// davfs2 logs only to syslog; set DAVFS2_DEBUG=1 to add `debug most` (HTTP headers, FUSE upcalls)
// to its configuration when a syslog daemon (/dev/log) is there to receive it.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, cp, mkdir, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { freeDir, removeDir, sleep, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import {
  eventually,
  exists,
  isMounted,
  listFiles,
  removeWorkUnlessMounted,
  runCmd,
  sampleTree,
  sha256,
  sha256File,
  writeTree,
  type RunOptions,
  type RunResult,
} from '../helpers/mount.js';

const MOUNT_DAVFS = ['/usr/sbin/mount.davfs', '/sbin/mount.davfs'].find((p) => existsSync(p));
const MOUNT_TIMEOUT_MS = 20_000;
const UMOUNT_TIMEOUT_MS = 30_000;
const BUF_SIZE_KIB = 256;

/**
 * Runs a command to completion (SIGKILL after `timeoutMs`). Resolves once its output is closed, or
 * 2 s after it exited: mount.davfs forks a daemon that must not keep us waiting.
 */
function run(cmd: string, args: string[], opts: Pick<RunOptions, 'input' | 'timeoutMs'> = {}): Promise<RunResult> {
  return runCmd(cmd, args, { ...opts, exitGraceMs: 2_000 });
}

function describeRun(cmd: string, args: string[], r: RunResult): string {
  const how = r.error ? `error ${r.error.message}` : r.signal ? `signal ${r.signal}` : `exit code ${r.code}`;
  const stdout = r.stdout.toString('utf8').trim();
  return `\`${cmd} ${args.join(' ')}\` ended with ${how}; stderr: ${r.stderr.trim() || '(empty)'}; stdout: ${stdout || '(empty)'}`;
}

/** PIDs of mount.davfs daemons serving `mountpoint` (they are the ones this test started). */
async function davfsDaemons(mountpoint: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv[0] !== undefined && argv[0].endsWith('mount.davfs') && argv.includes(mountpoint)) pids.push(Number(name));
  }
  return pids;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `umount` (umount.davfs waits for pending uploads); lazy unmount and killing our daemon as a last resort. */
async function unmountDavfs(mountpoint: string): Promise<{ ok: boolean; log: string }> {
  let log = '';
  if (await isMounted(mountpoint)) {
    const r = await run('umount', [mountpoint], { timeoutMs: UMOUNT_TIMEOUT_MS });
    log += `${describeRun('umount', [mountpoint], r)}\n`;
    if (await isMounted(mountpoint)) {
      const l = await run('umount', ['-l', mountpoint], { timeoutMs: 10_000 });
      log += `${describeRun('umount', ['-l', mountpoint], l)}\n`;
    }
  }
  // umount.davfs returns once the daemon has gone; make sure of it.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pids = await davfsDaemons(mountpoint);
    if (pids.length === 0) break;
    if (Date.now() > deadline) {
      for (const pid of pids) {
        log += `killing mount.davfs ${pid}\n`;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await sleep(200);
      // A killed daemon leaves its pid file behind.
      const pidFile = `/var/run/mount.davfs/${mountpoint.replace(/^\//, '').replace(/\//g, '-')}.pid`;
      await rm(pidFile, { force: true }).catch(() => undefined);
      break;
    }
    if (Date.now() > deadline - 5_000) {
      for (const pid of pids) if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
    }
    await sleep(100);
  }
  return { ok: !(await isMounted(mountpoint)), log };
}

/** Requests counted by the gateway, as 'METHOD status' -> count. */
async function requestCounts(adminUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(new URL('metrics', adminUrl))).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^davgate_requests_total\{method="([A-Z]+)",status="(\d+)"\} (\d+(?:\.\d+)?)$/gm)) {
    out.set(`${m[1]} ${m[2]}`, Number(m[3]));
  }
  return out;
}

function countWhere(counts: Map<string, number>, pred: (method: string, status: number) => boolean): number {
  let n = 0;
  for (const [k, v] of counts) {
    const [method, status] = k.split(' ');
    if (method !== undefined && status !== undefined && pred(method, Number(status))) n += v;
  }
  return n;
}

describe('davfs2 mount through davgate', { skip: MOUNT_DAVFS ? false : 'mount.davfs is not installed (Debian package davfs2; scripts/test-deps.sh installs it)' }, () => {
  let gw: GatewayProcess | undefined;
  let work = '';
  let mountpoint = '';
  let davfsCache = '';
  let conf = '';
  let srcDir = '';
  let davfsVersion = '';
  let skipReason: string | undefined;
  let mountLog = '';

  // The tree copied in: relative path -> content. Kept up to date as the tests change the tree.
  const files = sampleTree({ deep: true, oddName: true });
  const emptyDir = 'd/e';

  const mnt = (rel: string): string => join(mountpoint, 'tree', rel);
  const up = (rel: string): string => join(gw!.upstreamDir, 'tree', rel);
  const diag = (): string =>
    `\n--- mount/umount ---\n${mountLog.slice(-3000)}` +
    `\n--- gateway stderr (tail) ---\n${gw?.stderr().slice(-3000) ?? ''}` +
    `\n--- gateway stdout (tail) ---\n${gw?.stdout().slice(-3000) ?? ''}`;

  /** Mounts; returns a reason to skip when the kernel or sandbox does not let davfs2 mount or list. */
  async function mountDavfs(): Promise<string | undefined> {
    const args = ['-t', 'davfs', '-o', `conf=${conf}`, gw!.url, mountpoint];
    // davfs2 may still ask for a user name and password on stdin: answer with two empty lines.
    const r = await run('mount', args, { input: '\n\n', timeoutMs: MOUNT_TIMEOUT_MS });
    const what = describeRun('mount', args, r);
    mountLog += `${what}\n`;
    if (r.code !== 0 || !(await isMounted(mountpoint))) {
      if (await isMounted(mountpoint)) throw new Error(`mount failed but ${mountpoint} is mounted: ${what}${diag()}`);
      // Only what the environment refuses is a reason to skip; a refusal by the gateway
      // (davfs2: "Mounting failed." plus the HTTP status) is a failure.
      const env = /not permitted|permission denied|fuse|no such device|coda|only root/i;
      if (!existsSync('/dev/fuse') || (env.test(r.stderr) && !/Mounting failed/i.test(r.stderr))) {
        return `davfs2 cannot mount here (${existsSync('/dev/fuse') ? '/dev/fuse exists' : 'no /dev/fuse'}): ${what}`;
      }
      throw new Error(`davfs2 did not mount ${mountpoint}: ${what}${diag()}`);
    }
    try {
      await readdir(mountpoint);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EINVAL') {
        return (
          `${davfsVersion} cannot list directories on Linux ${release()}: readdir(${mountpoint}) failed with EINVAL ` +
          `(FUSE_READDIR refused although buf_size is ${BUF_SIZE_KIB} KiB)`
        );
      }
      throw err;
    }
    return undefined;
  }

  function skipIfNeeded(t: TestContext): boolean {
    if (skipReason === undefined) return false;
    t.skip(skipReason);
    return true;
  }

  before(async () => {
    gw = await startGatewayProcess({ args: ['--ttl', '1s'] });
    work = await freeDir('davgate-davfs2-');
    mountpoint = join(work, 'mnt');
    srcDir = join(work, 'src');
    await mkdir(mountpoint);
    await writeTree(srcDir, files, [emptyDir]);

    davfsVersion = (await run(MOUNT_DAVFS!, ['-V'])).stdout.toString('utf8').split('\n')[0]?.trim().split(/\s+/).slice(0, 2).join(' ') || 'davfs2';

    // Run as root, mount.davfs drops to the davfs2 user, which must be able to write its cache;
    // it wants the cache owned like /var/cache/davfs2 (root:davfs2, 0775): owned by davfs2 with
    // mode 0700 it answers "can't access directory".
    davfsCache = await freeDir('davgate-davfs2-cache-');
    const gid = /gid=(\d+)/.exec((await run('id', ['davfs2'])).stdout.toString('utf8'))?.[1];
    if (gid !== undefined) {
      await chown(davfsCache, 0, Number(gid));
      await chmod(davfsCache, 0o775);
    } else {
      await chmod(davfsCache, 0o777);
    }

    const secrets = join(work, 'secrets');
    await writeFile(secrets, `"${gw.url}" "" ""\n`, { mode: 0o600 });
    await chmod(secrets, 0o600);
    conf = join(work, 'davfs2.conf');
    await writeFile(
      conf,
      [
        `cache_dir ${davfsCache}`,
        `secrets ${secrets}`,
        'ask_auth 0',
        'use_locks 1',
        'lock_owner davgate-e2e',
        'delay_upload 0',
        'gui_optimize 0',
        'dir_refresh 1',
        'file_refresh 1',
        `buf_size ${BUF_SIZE_KIB}`,
        ...(process.env.DAVFS2_DEBUG ? ['debug most'] : []),
        '',
      ].join('\n'),
    );

    skipReason = await mountDavfs();
    if (skipReason) console.log(`davfs2-mount: skipping: ${skipReason}`);
  });

  after(async () => {
    let stillMounted = false;
    if (mountpoint) {
      const u = await unmountDavfs(mountpoint).catch((err: Error) => ({ ok: false, log: String(err) }));
      mountLog += u.log;
      stillMounted = !u.ok;
      if (stillMounted) console.log(`davfs2-mount: could not unmount ${mountpoint}\n${u.log}`);
    }
    await removeWorkUnlessMounted('davfs2-mount', work, mountpoint, stillMounted);
    if (davfsCache) await removeDir(davfsCache);
    if (gw) await gw.stop();
  });

  test('copy a tree in; SHA-256 matches through the mount and upstream', async (t) => {
    if (skipIfNeeded(t)) return;
    await cp(srcDir, join(mountpoint, 'tree'), { recursive: true });
    for (const [rel, data] of files) {
      const want = sha256(data);
      assert.equal(await sha256File(mnt(rel)), want, `through mount: ${rel}${diag()}`);
      // delay_upload 0: davfs2 uploads when the file is closed.
      await eventually(async () => assert.equal(await sha256File(up(rel)), want, `upstream: ${rel}`), 10_000);
      assert.equal((await stat(mnt(rel))).size, data.length, `size through mount: ${rel}`);
    }
    assert.ok((await stat(mnt(emptyDir))).isDirectory(), 'empty dir through mount');
    assert.ok((await stat(up(emptyDir))).isDirectory(), 'empty dir upstream');
    assert.deepEqual(await listFiles(up('')), [...files.keys()].sort(), 'upstream holds exactly the copied files');
  });

  test('readdir through the mount matches', async (t) => {
    if (skipIfNeeded(t)) return;
    assert.deepEqual((await readdir(mnt(''))).sort(), ['a', 'd', 'empty.bin', 'one.bin', 'sp ace', 'x']);
    assert.deepEqual((await readdir(mnt('a'))).sort(), ['b', 'hundred.bin']);
    assert.deepEqual((await readdir(mnt('a/b'))).sort(), ['c', 'note.txt']);
    assert.deepEqual(await readdir(mnt('sp ace')), ['ü ñ#%&+.txt']);
    assert.deepEqual(await readdir(mnt('d/e')), []);
    assert.deepEqual(await listFiles(mnt('')), [...files.keys()].sort(), 'recursive listing through mount');
  });

  test('files created and changed upstream appear through the mount', async (t) => {
    if (skipIfNeeded(t)) return;
    // The gateway revalidates after 1 s (--ttl 1s); davfs2 after dir_refresh / file_refresh 1 s.
    const data = randomBytes(3333);
    await writeFile(up('a/from-upstream.bin'), data);
    try {
      await eventually(async () => assert.equal(await sha256File(mnt('a/from-upstream.bin')), sha256(data)), 15_000, 250);
      const changed = randomBytes(4444);
      await writeFile(up('a/from-upstream.bin'), changed);
      await eventually(async () => assert.equal(await sha256File(mnt('a/from-upstream.bin')), sha256(changed), 'changed upstream'), 15_000, 250);
    } finally {
      await unlink(up('a/from-upstream.bin'));
    }
    await eventually(async () => assert.equal(await exists(mnt('a/from-upstream.bin')), false, 'removed upstream, still visible through the mount'), 15_000, 250);
  });

  test('overwrite a file through the mount', async (t) => {
    if (skipIfNeeded(t)) return;
    const data = randomBytes(50 * 1024 + 3);
    await writeFile(mnt('a/hundred.bin'), data);
    await eventually(async () => assert.equal(await sha256File(up('a/hundred.bin')), sha256(data), 'upstream after overwrite'), 10_000);
    assert.equal(await sha256File(mnt('a/hundred.bin')), sha256(data), 'mount after overwrite');
    files.set('a/hundred.bin', data);
  });

  test('rename a file and a directory through the mount', async (t) => {
    if (skipIfNeeded(t)) return;
    // File, across directories.
    await rename(mnt('one.bin'), mnt('a/one-renamed.bin'));
    await eventually(async () => {
      assert.equal(await exists(up('one.bin')), false, 'old file name gone upstream');
      assert.equal(await sha256File(up('a/one-renamed.bin')), sha256(files.get('one.bin')!), 'renamed file upstream');
    });
    assert.equal(await sha256File(mnt('a/one-renamed.bin')), sha256(files.get('one.bin')!));
    assert.equal(await exists(mnt('one.bin')), false);
    files.set('a/one-renamed.bin', files.get('one.bin')!);
    files.delete('one.bin');

    // Directory with a subtree (holds the 5 MiB file).
    await rename(mnt('a/b'), mnt('b2'));
    await eventually(async () => {
      assert.equal(await exists(up('a/b')), false, 'old dir gone upstream');
      assert.deepEqual(await listFiles(up('b2')), ['c/five.bin', 'note.txt'], 'renamed dir upstream');
    });
    assert.equal(await sha256File(up('b2/c/five.bin')), sha256(files.get('a/b/c/five.bin')!));
    assert.equal(await sha256File(mnt('b2/c/five.bin')), sha256(files.get('a/b/c/five.bin')!), 'renamed dir through mount');
    assert.deepEqual((await readdir(mnt('a'))).sort(), ['hundred.bin', 'one-renamed.bin']);
    for (const rel of ['a/b/note.txt', 'a/b/c/five.bin']) {
      files.set(rel.replace(/^a\/b\//, 'b2/'), files.get(rel)!);
      files.delete(rel);
    }

    // Directory with an odd name, renamed to another odd name.
    await rename(mnt('sp ace'), mnt('sp äce 2'));
    await eventually(async () => {
      assert.equal(await exists(up('sp ace')), false, 'old odd dir gone upstream');
      assert.deepEqual(await listFiles(up('sp äce 2')), ['ü ñ#%&+.txt'], 'renamed odd dir upstream');
    });
    files.set('sp äce 2/ü ñ#%&+.txt', files.get('sp ace/ü ñ#%&+.txt')!);
    files.delete('sp ace/ü ñ#%&+.txt');
  });

  test('a file written under a decomposed (NFD) name keeps that name and can be reopened by it', async (t) => {
    if (skipIfNeeded(t)) return;
    const nfd = 'Gru\u0308n Cafe\u0301.txt';
    await writeFile(mnt(nfd), 'nfd content');
    await eventually(async () => {
      assert.ok((await readdir(up(''))).includes(nfd), 'upstream name is not the spelling davfs2 wrote');
    });
    assert.ok((await readdir(mnt(''))).includes(nfd), 'the mount lists another spelling');
    assert.equal(await readFile(mnt(nfd), 'utf8'), 'nfd content');
    await writeFile(mnt(nfd), 'rewritten');
    await eventually(async () => assert.equal(await readFile(up(nfd), 'utf8'), 'rewritten'));
    assert.equal((await readdir(up(''))).filter((n) => n.normalize('NFC') === nfd.normalize('NFC')).length, 1, 'two spellings, two files');
    await unlink(mnt(nfd));
    await eventually(async () => assert.equal(await exists(up(nfd)), false, 'deleted upstream'));
  });

  test('delete a file and a directory through the mount', async (t) => {
    if (skipIfNeeded(t)) return;
    await unlink(mnt('empty.bin'));
    await rm(mnt('b2'), { recursive: true });
    await rmdir(mnt('d/e'));
    await eventually(async () => {
      assert.equal(await exists(up('empty.bin')), false, 'deleted file gone upstream');
      assert.equal(await exists(up('b2')), false, 'deleted dir gone upstream');
      assert.equal(await exists(up('d/e')), false, 'deleted empty dir gone upstream');
    });
    assert.equal(await exists(mnt('empty.bin')), false);
    assert.equal(await exists(mnt('b2')), false);
    for (const rel of [...files.keys()]) if (rel === 'empty.bin' || rel.startsWith('b2/')) files.delete(rel);
    assert.deepEqual((await readdir(mnt(''))).sort(), ['a', 'd', 'sp äce 2', 'x']);
    assert.deepEqual(await listFiles(up('')), [...files.keys()].sort());
    assert.ok(gw!.alive(), `gateway still alive${diag()}`);
  });

  test('writes went out locked, nothing failed, nothing was set aside in lost+found', async (t) => {
    if (skipIfNeeded(t)) return;
    const counts = await requestCounts(gw!.adminUrl);
    const table = [...counts].map(([k, v]) => `${k}: ${v}`).join(', ');
    assert.ok(countWhere(counts, (m, s) => m === 'LOCK' && s >= 200 && s < 300) > 0, `davfs2 took LOCKs (use_locks 1): ${table}`);
    assert.ok(countWhere(counts, (m, s) => m === 'UNLOCK' && s >= 200 && s < 300) > 0, `davfs2 released its LOCKs: ${table}`);
    assert.ok(countWhere(counts, (m, s) => m === 'PUT' && s >= 200 && s < 300) > 0, `PUTs: ${table}`);
    assert.equal(countWhere(counts, (_m, s) => s >= 500), 0, `no 5xx answers: ${table}`);
    assert.equal(countWhere(counts, (_m, s) => s === 423 || s === 412), 0, `no 423 Locked / 412 Precondition Failed: ${table}`);
    // davfs2 keeps files it could not upload in <mountpoint>/lost+found.
    assert.deepEqual(await readdir(join(mountpoint, 'lost+found')), [], 'davfs2 lost+found is empty');
  });

  test('unmount (flushes uploads), mount again: upstream and mount hold the same tree', async (t) => {
    if (skipIfNeeded(t)) return;
    const u = await unmountDavfs(mountpoint);
    mountLog += u.log;
    assert.ok(u.ok, `unmounted${diag()}`);
    assert.deepEqual(await davfsDaemons(mountpoint), [], 'mount.davfs daemon gone after umount');
    assert.deepEqual(await listFiles(up('')), [...files.keys()].sort(), 'upstream after umount');
    for (const [rel, data] of files) assert.equal(await sha256File(up(rel)), sha256(data), `upstream after umount: ${rel}`);

    const again = await mountDavfs();
    assert.equal(again, undefined, `mounted again${diag()}`);
    assert.deepEqual(await listFiles(mnt('')), [...files.keys()].sort(), 'listing after remount');
    for (const [rel, data] of files) assert.equal(await sha256File(mnt(rel)), sha256(data), `through mount after remount: ${rel}`);
  });
});
