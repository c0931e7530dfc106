// rclone mount (FUSE) of a real davgate process: copy a tree in, read it back through the mount and
// from the upstream directory, list, rename, overwrite and delete through the mount.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeDir, sleep, startGatewayProcess, terminate, type GatewayProcess } from '../helpers/gateway-process.js';
import {
  eventually,
  exists,
  isMounted,
  listFiles,
  removeWorkUnlessMounted,
  sampleTree,
  sha256,
  sha256File,
  unmountFuse,
  writeTree,
} from '../helpers/mount.js';

const MOUNT_TIMEOUT_MS = 20_000;
const HAVE_FUSE = existsSync('/dev/fuse');

describe('rclone mount through davgate', { skip: HAVE_FUSE ? false : '/dev/fuse does not exist (no FUSE in this environment)' }, () => {
  let gw: GatewayProcess | undefined;
  let rclone: ChildProcess | undefined;
  let rcloneLog = '';
  let work = '';
  let mountpoint = '';
  let srcDir = '';
  let mounted = false;

  // The tree copied in: relative path -> content.
  const files = sampleTree({ deep: true });
  const emptyDir = 'd/e';

  const mnt = (rel: string): string => join(mountpoint, 'tree', rel);
  const up = (rel: string): string => join(gw!.upstreamDir, 'tree', rel);
  const diag = (): string =>
    `\n--- rclone log (tail) ---\n${rcloneLog.slice(-3000)}` +
    `\n--- gateway stderr (tail) ---\n${gw?.stderr().slice(-3000) ?? ''}` +
    `\n--- gateway stdout (tail) ---\n${gw?.stdout().slice(-3000) ?? ''}`;

  before(async () => {
    gw = await startGatewayProcess({});
    work = await freeDir('davgate-rclone-');
    mountpoint = join(work, 'mnt');
    srcDir = join(work, 'src');
    await mkdir(mountpoint);
    await writeTree(srcDir, files, [emptyDir]);
    const conf = join(work, 'rclone.conf');
    await writeFile(conf, '');

    rclone = spawn(
      'rclone',
      ['mount', 'dav:', mountpoint, '--config', conf, '--vfs-cache-mode', 'off', '--dir-cache-time', '0s', '-v'],
      {
        env: {
          ...process.env,
          RCLONE_CONFIG_DAV_TYPE: 'webdav',
          RCLONE_CONFIG_DAV_URL: gw.url,
          RCLONE_CONFIG_DAV_VENDOR: 'other',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    rclone.stdout?.setEncoding('utf8');
    rclone.stderr?.setEncoding('utf8');
    rclone.stdout?.on('data', (c: string) => (rcloneLog = (rcloneLog + c).slice(-200_000)));
    rclone.stderr?.on('data', (c: string) => (rcloneLog = (rcloneLog + c).slice(-200_000)));
    let spawnError: Error | undefined;
    rclone.once('error', (e) => (spawnError = e));

    const deadline = Date.now() + MOUNT_TIMEOUT_MS;
    while (!(await isMounted(mountpoint))) {
      if (spawnError) throw new Error(`cannot run rclone: ${spawnError.message}`);
      if (rclone.exitCode !== null || rclone.signalCode !== null) {
        throw new Error(`rclone mount exited (${rclone.exitCode ?? rclone.signalCode}) before mounting${diag()}`);
      }
      if (Date.now() > deadline) throw new Error(`rclone did not mount ${mountpoint} within ${MOUNT_TIMEOUT_MS} ms${diag()}`);
      await sleep(100);
    }
    mounted = true;
  });

  after(async () => {
    if (mountpoint && (mounted || (await isMounted(mountpoint).catch(() => false)))) {
      if (!unmountFuse(mountpoint, { lazyFusermount: true })) console.log(`rclone-mount: could not unmount ${mountpoint}`);
    }
    if (rclone) await terminate(rclone, 5_000);
    const stillMounted = mountpoint ? await isMounted(mountpoint).catch(() => true) : false;
    await removeWorkUnlessMounted('rclone-mount', work, mountpoint, stillMounted);
    if (gw) await gw.stop();
  });

  test('copy a tree in; SHA-256 matches through the mount and upstream', async () => {
    await cp(srcDir, join(mountpoint, 'tree'), { recursive: true });
    for (const [rel, data] of files) {
      const want = sha256(data);
      assert.equal(await sha256File(mnt(rel)), want, `through mount: ${rel}${diag()}`);
      await eventually(async () => assert.equal(await sha256File(up(rel)), want, `upstream: ${rel}`));
      assert.equal((await stat(mnt(rel))).size, data.length, `size through mount: ${rel}`);
    }
    assert.ok((await stat(mnt(emptyDir))).isDirectory(), 'empty dir through mount');
    assert.ok((await stat(up(emptyDir))).isDirectory(), 'empty dir upstream');
    assert.deepEqual(await listFiles(up('')), [...files.keys()].sort(), 'upstream holds exactly the copied files');
  });

  test('readdir through the mount matches', async () => {
    assert.deepEqual((await readdir(mnt(''))).sort(), ['a', 'd', 'empty.bin', 'one.bin', 'x']);
    assert.deepEqual((await readdir(mnt('a'))).sort(), ['b', 'hundred.bin']);
    assert.deepEqual((await readdir(mnt('a/b'))).sort(), ['c', 'note.txt']);
    assert.deepEqual(await readdir(mnt('d/e')), []);
    assert.deepEqual(await listFiles(mnt('')), [...files.keys()].sort(), 'recursive listing through mount');
  });

  test('files created upstream appear through the mount', async () => {
    // The gateway revalidates after its ttl (default 5 s); rclone runs with --dir-cache-time 0s.
    const data = randomBytes(3333);
    await writeFile(up('a/from-upstream.bin'), data);
    try {
      await eventually(async () => assert.equal(await sha256File(mnt('a/from-upstream.bin')), sha256(data)), 15_000, 250);
    } finally {
      await unlink(up('a/from-upstream.bin'));
    }
    await eventually(async () => assert.equal(await exists(mnt('a/from-upstream.bin')), false, 'removed upstream, still visible through the mount'), 15_000, 250);
  });

  test('overwrite a file through the mount', async () => {
    const data = randomBytes(50 * 1024 + 3);
    await writeFile(mnt('a/hundred.bin'), data);
    await eventually(async () => assert.equal(await sha256File(up('a/hundred.bin')), sha256(data), 'upstream after overwrite'));
    assert.equal(await sha256File(mnt('a/hundred.bin')), sha256(data), 'mount after overwrite');
    files.set('a/hundred.bin', data);
  });

  test('rename a file and a directory through the mount', async () => {
    // File, across directories.
    await rename(mnt('one.bin'), mnt('a/one-renamed.bin'));
    await eventually(async () => {
      assert.equal(await exists(up('one.bin')), false, 'old file name gone upstream');
      assert.equal(await sha256File(up('a/one-renamed.bin')), sha256(files.get('one.bin')!), 'renamed file upstream');
    });
    assert.equal(await sha256File(mnt('a/one-renamed.bin')), sha256(files.get('one.bin')!));
    assert.equal(await exists(mnt('one.bin')), false);

    // Directory with a subtree (holds the 5 MiB file).
    await rename(mnt('a/b'), mnt('b2'));
    await eventually(async () => {
      assert.equal(await exists(up('a/b')), false, 'old dir gone upstream');
      assert.deepEqual(await listFiles(up('b2')), ['c/five.bin', 'note.txt'], 'renamed dir upstream');
    });
    assert.equal(await sha256File(up('b2/c/five.bin')), sha256(files.get('a/b/c/five.bin')!));
    assert.equal(await sha256File(mnt('b2/c/five.bin')), sha256(files.get('a/b/c/five.bin')!), 'renamed dir through mount');
    assert.deepEqual((await readdir(mnt('a'))).sort(), ['hundred.bin', 'one-renamed.bin']);
  });

  test('delete a file and a directory through the mount', async () => {
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
    assert.deepEqual((await readdir(mnt(''))).sort(), ['a', 'd', 'x']);
    assert.deepEqual(await listFiles(up('')), ['a/hundred.bin', 'a/one-renamed.bin', 'x/y/z/deep.bin']);
    assert.ok(gw!.alive(), `gateway still alive${diag()}`);
  });
});
