// GNOME gvfs against a real davgate process, headless: a private D-Bus session bus (dbus-daemon
// started here), gvfsd activated on it, `gio mount dav://127.0.0.1:PORT/`, then the gio commands a
// GNOME desktop uses underneath (list, cat, info, copy, save, mkdir, rename, move, remove), and the
// POSIX view that gvfsd-fuse offers under $XDG_RUNTIME_DIR/gvfs when gvfs-fuse is installed.
//
// Everything runs with HOME and XDG_RUNTIME_DIR in a temp dir, GSETTINGS_BACKEND=memory (no dconf)
// and GVFS_REMOTE_VOLUME_MONITOR_IGNORE=1 (no udisks2/MTP/gphoto2/... monitors). gvfsd-dav runs with
// GVFS_DEBUG=1 GVFS_HTTP_DEBUG=header: its HTTP trace goes to the bus daemon's stdout and is shown
// when an assertion fails.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeDir, removeDir, sleep, startGatewayProcess, terminate, type GatewayProcess } from '../helpers/gateway-process.js';
import {
  eventually,
  exists,
  isMounted,
  listFiles,
  runCmd,
  sampleTree,
  sha256,
  sha256File,
  unmountFuse,
  writeTree,
  type RunResult,
} from '../helpers/mount.js';

const GIO_TIMEOUT_MS = 20_000;

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

const GVFSD_DAV = ['/usr/libexec/gvfsd-dav', '/usr/lib/gvfs/gvfsd-dav'].find((p) => existsSync(p));
const GVFSD_FUSE = ['/usr/libexec/gvfsd-fuse', '/usr/lib/gvfs/gvfsd-fuse'].find((p) => existsSync(p));
const MISSING = [
  onPath('gio') ? undefined : 'gio (libglib2.0-bin)',
  onPath('dbus-daemon') ? undefined : 'dbus-daemon (dbus-daemon)',
  GVFSD_DAV ? undefined : 'gvfsd-dav (gvfs-backends)',
].filter((m): m is string => m !== undefined);

/** PIDs of processes whose environment holds `XDG_RUNTIME_DIR=<dir>`: the gvfs daemons of this test. */
async function processesWithRuntimeDir(dir: string): Promise<number[]> {
  const needle = `XDG_RUNTIME_DIR=${dir}`;
  const pids: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const environ = await readFile(`/proc/${name}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(needle)) pids.push(Number(name));
  }
  return pids;
}

/** `dav://` URI of a path relative to the share root; every segment percent-encoded. */
function davUri(base: string, rel: string): string {
  return base + rel.split('/').map((s) => encodeURIComponent(s)).join('/');
}

describe('GNOME gvfs (gio, gvfsd-dav) through davgate', { skip: MISSING.length ? `not installed: ${MISSING.join(', ')} (scripts/test-deps.sh installs them)` : false }, () => {
  let gw: GatewayProcess | undefined;
  let bus: ChildProcess | undefined;
  let busLog = '';
  let work = '';
  let xdg = '';
  let srcDir = '';
  let base = '';
  let env: NodeJS.ProcessEnv = {};
  let mounted = false;
  let gioLog = '';

  // What the tests put on the share: relative path -> content.
  const files = sampleTree({ oddName: true, prefix: 'tree/' });
  const dirs = ['tree', 'tree/a', 'tree/a/b', 'tree/a/b/c', 'tree/sp ace', 'tree/d'];

  const uri = (rel: string): string => davUri(base, rel);
  const up = (rel: string): string => join(gw!.upstreamDir, rel);
  const diag = (): string =>
    `\n--- gio commands (tail) ---\n${gioLog.slice(-3000)}` +
    `\n--- session bus / gvfsd-dav trace (tail) ---\n${busLog.slice(-6000)}` +
    `\n--- gateway stderr (tail) ---\n${gw?.stderr().slice(-2000) ?? ''}`;

  async function gio(args: string[], input?: string | Buffer): Promise<RunResult> {
    const r = await runCmd('gio', args, { env, input, timeoutMs: GIO_TIMEOUT_MS });
    const how = r.error ? `error ${r.error.message}` : r.signal ? `signal ${r.signal}` : `exit ${r.code}`;
    gioLog += `$ gio ${args.join(' ')} -> ${how}${r.stderr.trim() ? `; stderr: ${r.stderr.trim()}` : ''}\n`;
    return r;
  }

  /** Runs gio and fails the test unless it exits 0. */
  async function gioOk(args: string[], input?: string | Buffer): Promise<Buffer> {
    const r = await gio(args, input);
    assert.equal(r.code, 0, `gio ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()}${diag()}`);
    return r.stdout;
  }

  /** `gio list -l`: name -> [size, type]. */
  async function gioList(rel: string): Promise<Map<string, [number, string]>> {
    const out = (await gioOk(['list', '-l', uri(rel)])).toString('utf8');
    const m = new Map<string, [number, string]>();
    for (const line of out.split('\n')) {
      const f = /^(.*)\t(\d+)\t\((\w+)\)$/.exec(line);
      if (f) m.set(f[1]!, [Number(f[2]), f[3]!]);
    }
    return m;
  }

  /** The gvfsd-fuse directory for our share, when gvfsd-fuse is up. */
  const fuseRoot = (): string => join(xdg, 'gvfs', `dav:host=127.0.0.1,port=${new URL(gw!.url).port},ssl=false`);

  before(async () => {
    gw = await startGatewayProcess({ args: ['--ttl', '1s'] });
    base = gw.url.replace(/^http:/, 'dav:');
    work = await freeDir('davgate-gvfs-');
    xdg = join(work, 'xdg');
    const home = join(work, 'home');
    srcDir = join(work, 'src');
    await mkdir(xdg, { mode: 0o700 });
    await mkdir(home, { mode: 0o700 });
    await writeTree(srcDir, files);

    env = {
      ...process.env,
      HOME: home,
      XDG_RUNTIME_DIR: xdg,
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_DATA_HOME: join(home, '.local', 'share'),
      XDG_CACHE_HOME: join(home, '.cache'),
      GSETTINGS_BACKEND: 'memory',
      GIO_USE_VOLUME_MONITOR: 'unix',
      GVFS_REMOTE_VOLUME_MONITOR_IGNORE: '1',
      GVFS_DEBUG: '1',
      GVFS_HTTP_DEBUG: 'header',
      LC_ALL: 'C.UTF-8',
    };
    for (const k of ['DBUS_SESSION_BUS_ADDRESS', 'DISPLAY', 'WAYLAND_DISPLAY', 'GIO_USE_VFS']) delete env[k];

    // A private session bus; gvfsd and its backends are activated on it and inherit its env and stdio.
    bus = spawn('dbus-daemon', ['--session', '--nofork', '--nopidfile', '--print-address=1', `--address=unix:path=${join(xdg, 'bus')}`], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    bus.stdout?.setEncoding('utf8');
    bus.stderr?.setEncoding('utf8');
    bus.stdout?.on('data', (c: string) => (busLog = (busLog + c).slice(-500_000)));
    bus.stderr?.on('data', (c: string) => (busLog = (busLog + c).slice(-500_000)));
    let spawnError: Error | undefined;
    bus.once('error', (e) => (spawnError = e));
    const deadline = Date.now() + 10_000;
    let address: string | undefined;
    while (address === undefined) {
      address = /^(unix:\S+)\n/.exec(busLog)?.[1];
      if (address) break;
      if (spawnError) throw new Error(`cannot run dbus-daemon: ${spawnError.message}`);
      if (bus.exitCode !== null || bus.signalCode !== null) throw new Error(`dbus-daemon exited (${bus.exitCode ?? bus.signalCode})${diag()}`);
      if (Date.now() > deadline) throw new Error(`dbus-daemon printed no address within 10 s${diag()}`);
      await sleep(50);
    }
    env.DBUS_SESSION_BUS_ADDRESS = address;

    // Anonymous: nothing on stdin, so gio fails instead of waiting if the share asked for a password.
    const r = await gio(['mount', base]);
    if (r.code !== 0) throw new Error(`gio mount ${base} failed: ${r.error?.message ?? r.stderr.trim()}${diag()}`);
    mounted = true;
  });

  after(async () => {
    if (mounted) await gio(['mount', '-u', base]).catch(() => undefined);
    // The gvfs daemons leave when their bus goes away.
    if (bus) await terminate(bus, 5_000);
    const fuseMount = xdg ? join(xdg, 'gvfs') : '';
    let stillMounted = false;
    if (fuseMount) {
      await eventually(async () => assert.equal(await isMounted(fuseMount), false), 5_000).catch(() => undefined);
      if (await isMounted(fuseMount)) unmountFuse(fuseMount);
      stillMounted = await isMounted(fuseMount).catch(() => true);
    }
    // Any gvfs daemon of ours still around (they carry our XDG_RUNTIME_DIR): TERM, then KILL.
    if (xdg) {
      for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
        const pids = await processesWithRuntimeDir(xdg);
        if (pids.length === 0) break;
        for (const pid of pids) {
          try {
            process.kill(pid, sig);
          } catch {
            /* gone */
          }
        }
        await eventually(async () => assert.deepEqual(await processesWithRuntimeDir(xdg), []), 3_000).catch(() => undefined);
      }
    }
    if (stillMounted) console.log(`gvfs-mount: ${fuseMount} still mounted; leaving ${work} in place`);
    else if (work) await removeDir(work);
    if (gw) await gw.stop();
  });

  test('the share is mounted and listed by gio mount -l', async () => {
    const out = (await gioOk(['mount', '-l'])).toString('utf8');
    assert.ok(out.includes(`-> ${base}`), `gio mount -l lists ${base}:\n${out}${diag()}`);
  });

  test('write: gio mkdir and gio copy a tree in; upstream bytes match', async () => {
    for (const d of dirs) await gioOk(['mkdir', uri(d)]);
    for (const [rel, data] of files) {
      await gioOk(['copy', join(srcDir, rel), uri(rel)]);
      assert.equal(await sha256File(up(rel)), sha256(data), `upstream after gio copy: ${rel}${diag()}`);
    }
    assert.deepEqual(await listFiles(up('tree')), [...files.keys()].map((k) => k.slice('tree/'.length)).sort());
    assert.ok((await stat(up('tree/d'))).isDirectory(), 'empty dir upstream');
  });

  test('list: gio list shows names, sizes and types', async () => {
    const root = await gioList('tree/');
    assert.deepEqual([...root.keys()].sort(), ['a', 'd', 'empty.bin', 'one.bin', 'sp ace'], `gio list tree/${diag()}`);
    assert.equal(root.get('a')?.[1], 'directory');
    assert.deepEqual(root.get('one.bin'), [1, 'regular']);
    assert.deepEqual(root.get('empty.bin'), [0, 'regular']);
    const c = await gioList('tree/a/b/c/');
    assert.deepEqual([...c], [['five.bin', [5 * 1024 * 1024, 'regular']]]);
    assert.deepEqual([...(await gioList('tree/sp ace/'))], [['ü ñ#%&+.txt', [9, 'regular']]]);
    assert.deepEqual([...(await gioList('tree/d/'))], []);
  });

  test('read: gio cat returns the same bytes; gio info the size and an ETag', async () => {
    for (const [rel, data] of files) {
      const got = await gioOk(['cat', uri(rel)]);
      assert.equal(got.length, data.length, `gio cat size: ${rel}`);
      assert.equal(sha256(got), sha256(data), `gio cat bytes: ${rel}`);
    }
    const info = (await gioOk(['info', '-a', 'standard::size,standard::type,etag::value', uri('tree/a/b/c/five.bin')])).toString('utf8');
    assert.match(info, /standard::size: 5242880/, info);
    assert.match(info, /standard::type: 1/, info);
    assert.match(info, /etag::value: \S+/, `gvfs saw an ETag:\n${info}`);
  });

  test('files created and changed upstream appear through gvfs', async () => {
    const data = randomBytes(3333);
    await writeFile(up('tree/a/from-upstream.bin'), data);
    try {
      await eventually(async () => assert.equal(sha256(await gioOk(['cat', uri('tree/a/from-upstream.bin')])), sha256(data)), 15_000, 250);
      const changed = randomBytes(4444);
      await writeFile(up('tree/a/from-upstream.bin'), changed);
      // The gateway revalidates after 1 s (--ttl 1s).
      await eventually(async () => assert.equal(sha256(await gioOk(['cat', uri('tree/a/from-upstream.bin')])), sha256(changed)), 15_000, 250);
      assert.ok((await gioList('tree/a/')).has('from-upstream.bin'));
    } finally {
      await unlink(up('tree/a/from-upstream.bin'));
    }
    await eventually(async () => assert.equal((await gioList('tree/a/')).has('from-upstream.bin'), false, 'removed upstream, still listed'), 15_000, 250);
  });

  test('overwrite: gio copy onto an existing file, gio save from stdin', async () => {
    const data = randomBytes(50 * 1024 + 3);
    const local = join(work, 'overwrite.bin');
    await writeFile(local, data);
    await gioOk(['copy', local, uri('tree/a/hundred.bin')]);
    assert.equal(await sha256File(up('tree/a/hundred.bin')), sha256(data), 'upstream after overwrite');
    assert.equal(sha256(await gioOk(['cat', uri('tree/a/hundred.bin')])), sha256(data), 'gio cat after overwrite');
    files.set('tree/a/hundred.bin', data);

    const saved = randomBytes(70 * 1024 + 1);
    await gioOk(['save', uri('tree/saved.bin')], saved);
    assert.equal(await sha256File(up('tree/saved.bin')), sha256(saved), 'upstream after gio save');
    files.set('tree/saved.bin', saved);
  });

  test('rename and move a file and a directory', async () => {
    await gioOk(['rename', uri('tree/one.bin'), 'one-renamed.bin']);
    assert.equal(await exists(up('tree/one.bin')), false, 'old name gone upstream');
    assert.equal(await sha256File(up('tree/one-renamed.bin')), sha256(files.get('tree/one.bin')!));

    await gioOk(['move', uri('tree/one-renamed.bin'), uri('tree/a/one-moved.bin')]);
    assert.equal(await exists(up('tree/one-renamed.bin')), false);
    assert.equal(await sha256File(up('tree/a/one-moved.bin')), sha256(files.get('tree/one.bin')!));
    files.set('tree/a/one-moved.bin', files.get('tree/one.bin')!);
    files.delete('tree/one.bin');

    // Directory with the 5 MiB file inside, renamed in place, then moved up a level.
    await gioOk(['rename', uri('tree/a/b'), 'b-renamed']);
    assert.equal(await exists(up('tree/a/b')), false, 'old dir name gone upstream');
    assert.deepEqual(await listFiles(up('tree/a/b-renamed')), ['c/five.bin', 'note.txt']);
    await gioOk(['move', uri('tree/a/b-renamed'), uri('tree/b2')]);
    assert.equal(await exists(up('tree/a/b-renamed')), false);
    assert.deepEqual(await listFiles(up('tree/b2')), ['c/five.bin', 'note.txt']);
    assert.equal(await sha256File(up('tree/b2/c/five.bin')), sha256(files.get('tree/a/b/c/five.bin')!));
    assert.equal(sha256(await gioOk(['cat', uri('tree/b2/c/five.bin')])), sha256(files.get('tree/a/b/c/five.bin')!));
    for (const rel of ['tree/a/b/note.txt', 'tree/a/b/c/five.bin']) {
      files.set(rel.replace(/^tree\/a\/b\//, 'tree/b2/'), files.get(rel)!);
      files.delete(rel);
    }

    await gioOk(['rename', uri('tree/sp ace'), 'sp äce 2']);
    assert.deepEqual(await listFiles(up('tree/sp äce 2')), ['ü ñ#%&+.txt']);
    files.set('tree/sp äce 2/ü ñ#%&+.txt', files.get('tree/sp ace/ü ñ#%&+.txt')!);
    files.delete('tree/sp ace/ü ñ#%&+.txt');
    assert.deepEqual(
      [...(await gioList('tree/')).keys()].sort(),
      ['a', 'b2', 'd', 'empty.bin', 'saved.bin', 'sp äce 2'],
      `gio list after renames${diag()}`,
    );
  });

  test('delete: gio remove files and directories', async () => {
    await gioOk(['remove', uri('tree/empty.bin')]);
    assert.equal(await exists(up('tree/empty.bin')), false);
    files.delete('tree/empty.bin');

    // gio refuses to remove a non-empty directory (gvfsd-dav checks); nothing may be deleted upstream.
    const r = await gio(['remove', uri('tree/b2')]);
    assert.notEqual(r.code, 0, 'gio remove of a non-empty directory fails');
    assert.deepEqual(await listFiles(up('tree/b2')), ['c/five.bin', 'note.txt'], 'non-empty dir untouched upstream');

    await gioOk(['remove', uri('tree/b2/c/five.bin'), uri('tree/b2/note.txt')]);
    await gioOk(['remove', uri('tree/b2/c')]);
    await gioOk(['remove', uri('tree/b2')]);
    await gioOk(['remove', uri('tree/d')]);
    assert.equal(await exists(up('tree/b2')), false, 'deleted dir gone upstream');
    assert.equal(await exists(up('tree/d')), false, 'deleted empty dir gone upstream');
    for (const rel of [...files.keys()]) if (rel.startsWith('tree/b2/')) files.delete(rel);
    assert.deepEqual([...(await gioList('tree/')).keys()].sort(), ['a', 'saved.bin', 'sp äce 2']);
    assert.deepEqual(await listFiles(up('tree')), [...files.keys()].map((k) => k.slice('tree/'.length)).sort());
  });

  test('gvfsd-fuse: read, write, list, rename and delete through $XDG_RUNTIME_DIR/gvfs', async (t: TestContext) => {
    if (!GVFSD_FUSE) return t.skip('gvfsd-fuse is not installed (Debian package gvfs-fuse)');
    if (!existsSync('/dev/fuse')) return t.skip('/dev/fuse does not exist (no FUSE in this environment)');
    const root = fuseRoot();
    await eventually(async () => assert.ok(await exists(root), `${root} appears`), 10_000).catch((err: Error) => {
      throw new Error(`${err.message}; gvfs fuse mounted: ${existsSync(join(xdg, 'gvfs'))}${diag()}`);
    });
    const f = (rel: string): string => join(root, rel);

    assert.deepEqual((await readdir(f('tree'))).sort(), ['a', 'saved.bin', 'sp äce 2']);
    assert.equal(await sha256File(f('tree/saved.bin')), sha256(files.get('tree/saved.bin')!), 'read through gvfsd-fuse');

    const data = randomBytes(200 * 1024 + 5);
    await writeFile(f('tree/a/fuse.bin'), data);
    // gvfsd-fuse hands the data to gvfsd-dav, which PUTs it when the file is closed.
    await eventually(async () => assert.equal(await sha256File(up('tree/a/fuse.bin')), sha256(data), 'upstream after write through gvfsd-fuse'), 10_000);
    assert.equal(await sha256File(f('tree/a/fuse.bin')), sha256(data));

    await rename(f('tree/a/fuse.bin'), f('tree/fuse-renamed.bin'));
    await eventually(async () => {
      assert.equal(await exists(up('tree/a/fuse.bin')), false);
      assert.equal(await sha256File(up('tree/fuse-renamed.bin')), sha256(data));
    });
    await mkdir(f('tree/fuse-dir'));
    await rename(f('tree/fuse-dir'), f('tree/fuse-dir-2'));
    await eventually(async () => assert.ok((await stat(up('tree/fuse-dir-2'))).isDirectory()));

    await unlink(f('tree/fuse-renamed.bin'));
    await rmdir(f('tree/fuse-dir-2'));
    await eventually(async () => {
      assert.equal(await exists(up('tree/fuse-renamed.bin')), false, 'deleted through gvfsd-fuse');
      assert.equal(await exists(up('tree/fuse-dir-2')), false, 'rmdir through gvfsd-fuse');
    });
    assert.deepEqual(await listFiles(up('tree')), [...files.keys()].map((k) => k.slice('tree/'.length)).sort());
  });

  test('no 5xx from the gateway; gio mount -u unmounts', async () => {
    const metrics = await (await fetch(new URL('metrics', gw!.adminUrl))).text();
    const bad = [...metrics.matchAll(/^davgate_requests_total\{method="([A-Z]+)",status="(5\d\d)"\} (\d+)/gm)].map((m) => m[0]);
    assert.deepEqual(bad, [], `5xx answers${diag()}`);
    await gioOk(['mount', '-u', base]);
    mounted = false;
    await eventually(async () => assert.ok(!(await gioOk(['mount', '-l'])).toString('utf8').includes(`-> ${base}`), 'still listed after unmount'));
    assert.ok(gw!.alive(), `gateway still alive${diag()}`);
  });
});
