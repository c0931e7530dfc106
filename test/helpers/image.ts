// Builds the project's Dockerfile with buildah and runs the image, on machines without a Docker engine
// or an image registry (docs/docker.md, "Tests"). Everything lives in a buildah storage of its own
// (STORE_DIR), kept between runs so that reruns reuse the base image and the cached layers; nothing
// outside it is touched. Containers run with chroot isolation inside a private network namespace.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { appendFile, chmod, copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeDir, sleep, terminate } from './gateway-process.js';
import { reapOnExit } from './reaper.js';

/** The repository (this file is compiled to dist/test/helpers/). */
export const REPO_DIR = fileURLToPath(new URL('../../../', import.meta.url));
/** buildah storage, the cached base rootfs and the last build log. Remove it to start from scratch. */
export const STORE_DIR = process.env.DAVGATE_TEST_BUILDAH_DIR ?? '/var/tmp/davgate-test-buildah';
export const BASE_IMAGE = 'docker.io/library/node:20-bookworm-slim';
export const TEST_IMAGE = 'localhost/davgate:test';
export const BUILD_LOG = join(STORE_DIR, 'build.log');

const STORAGE = ['--root', join(STORE_DIR, 'root'), '--runroot', join(STORE_DIR, 'runroot'), '--storage-driver', 'overlay'];
const ROOTFS_TAR = join(STORE_DIR, 'bookworm-minbase.tar');
const MAX_OUTPUT = 2_000_000;
const MIN = 60_000;

export interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

const tail = (s: string, n = 4000): string => (s.length > n ? `…${s.slice(-n)}` : s);

/** Runs a command to completion; rejects on a non-zero exit (unless allowFail) or after timeoutMs. */
export function run(cmd: string, args: string[], opts: { timeoutMs: number; allowFail?: boolean; env?: NodeJS.ProcessEnv; logFile?: string }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // A process group of its own, so a timeout also ends what the command started (buildah's children).
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, detached: true });
    const unreap = reapOnExit(child.pid);
    let stdout = '', stderr = '';
    let log = Promise.resolve();
    const onData = (which: 'out' | 'err') => (c: Buffer) => {
      if (which === 'out') stdout = (stdout + c.toString()).slice(-MAX_OUTPUT);
      else stderr = (stderr + c.toString()).slice(-MAX_OUTPUT);
      if (opts.logFile) { const f = opts.logFile; log = log.then(() => appendFile(f, c)).catch(() => {}); }
    };
    child.stdout.on('data', onData('out'));
    child.stderr.on('data', onData('err'));
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, opts.timeoutMs);
    const describe = (why: string) => new Error(`${why}: ${cmd} ${args.join(' ')}\n--- output (tail) ---\n${tail(stdout)}\n${tail(stderr)}`);
    child.once('error', (e) => { clearTimeout(timer); unreap(); reject(describe(`cannot start (${e.message})`)); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      unreap();
      void log.then(() => {
        if (timedOut) reject(describe(`timed out after ${opts.timeoutMs / 1000} s`));
        else if (code !== 0 && !opts.allowFail) reject(describe(`exit ${code ?? signal}`));
        else resolve({ code, signal, stdout, stderr });
      });
    });
  });
}

export function buildah(args: string[], timeoutMs = 2 * MIN, extra: { allowFail?: boolean; logFile?: string } = {}): Promise<RunResult> {
  return run('buildah', [...STORAGE, ...args], { timeoutMs, ...extra });
}

function onPath(cmd: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  return dirs.some((d) => d && existsSync(join(d, cmd)));
}

/**
 * Why the image cannot be built and run here, or undefined when it can. Only what the machine lacks
 * is a reason (no buildah, not root, no namespaces); a failing build is a failure, not a skip.
 */
export function imageToolsMissing(): string | undefined {
  if (process.platform !== 'linux') return 'the image tests need Linux (buildah with chroot isolation)';
  if (process.getuid?.() !== 0) return 'the image tests need root (buildah chroot isolation, debootstrap, unshare --net)';
  const missing = ['buildah', 'unshare', 'nsenter', 'ip', 'curl', 'tar'].filter((c) => !onPath(c));
  if (missing.length > 0) return `missing ${missing.join(', ')} (scripts/test-deps.sh installs buildah)`;
  const ns = spawnSync('unshare', ['--net', '--mount', '--fork', 'true'], { encoding: 'utf8', timeout: 20_000 });
  if (ns.status !== 0) return `cannot create network/mount namespaces here (unshare: ${(ns.stderr || ns.error?.message || '').trim()})`;
  const info = spawnSync('buildah', [...STORAGE, 'info'], { encoding: 'utf8', timeout: 60_000 });
  if (info.status !== 0) return `buildah cannot use its storage here (${tail((info.stderr || info.error?.message || '').trim(), 500)})`;
  const base = spawnSync('buildah', [...STORAGE, 'inspect', '--type', 'image', BASE_IMAGE], { timeout: 60_000 });
  if (base.status !== 0 && !existsSync(ROOTFS_TAR) && !onPath('debootstrap')) {
    return `the base image ${BASE_IMAGE} is not in ${STORE_DIR} and debootstrap (to make it) is missing`;
  }
  return undefined;
}

/**
 * Takes the storage for this process (waiting while another live test process holds it), then
 * clears what a holder killed before its cleanup left behind: processes still running in its
 * containers, the containers of an interrupted build or run. Returns the release function.
 */
export async function lockStore(timeoutMs = 20 * MIN): Promise<() => Promise<void>> {
  await mkdir(STORE_DIR, { recursive: true });
  const lock = join(STORE_DIR, 'lock');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try { await writeFile(lock, String(process.pid), { flag: 'wx' }); break; } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(await readFile(lock, 'utf8').catch(() => '0'));
      const alive = holder > 0 && (await readFile(`/proc/${holder}/comm`, 'utf8').catch(() => '')).trim() === 'node';
      if (!alive) await rm(lock, { force: true });
      else if (Date.now() > deadline) throw new Error(`${STORE_DIR} is still in use by process ${holder} (another image test?)`);
      else await sleep(1000);
    }
  }
  const release = () => { try { if (readFileSync(lock, 'utf8') === String(process.pid)) rmSync(lock); } catch { /* gone */ } };
  process.once('exit', release);
  // Left over: buildah commands on this storage, and processes whose root is an overlay of it.
  for (const e of (await readdir('/proc')).filter((x) => /^\d+$/.test(x) && Number(x) !== process.pid)) {
    const cmdline = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    const mounts = await readFile(`/proc/${e}/mountinfo`, 'utf8').catch(() => '');
    const root = mounts.split('\n').find((l) => l.split(' ')[4] === '/') ?? '';
    if (cmdline.includes(`\0${join(STORE_DIR, 'root')}\0`) || root.includes(join(STORE_DIR, 'root/overlay/'))) {
      try { process.kill(Number(e), 'SIGKILL'); } catch { /* gone */ }
    }
  }
  await buildah(['rm', '--all'], 2 * MIN, { allowFail: true });
  return async () => release();
}

/** The Debian mirror of this machine's apt sources (deb822 or one-line format). */
function debianMirror(): string {
  for (const f of aptSources()) {
    const text = readFileSync(f, 'utf8');
    const m = /^URIs:\s*(\S+\/debian)\/?\s*$/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+bookworm\b/m.exec(text);
    if (m) return m[1]!;
  }
  return 'http://deb.debian.org/debian';
}

function listDir(dir: string): string[] {
  try { return readdirSync(dir); } catch { return []; }
}
const aptSources = (): string[] => ['/etc/apt/sources.list', ...listDir('/etc/apt/sources.list.d').map((f) => join('/etc/apt/sources.list.d', f))]
  .filter((f) => /(\.list|\.sources)$/.test(f) && existsSync(f));

/** debootstrap once, then a cached tarball: Debian bookworm minbase, this machine's apt setup, user node. */
async function bootstrapRootfs(log: (m: string) => void): Promise<void> {
  await mkdir(STORE_DIR, { recursive: true });
  const dir = join(STORE_DIR, 'rootfs.tmp');
  await rm(dir, { recursive: true, force: true });
  const mirror = debianMirror();
  log(`debootstrap --variant=minbase bookworm from ${mirror} (once; cached in ${ROOTFS_TAR})`);
  await run('debootstrap', ['--variant=minbase', 'bookworm', dir, mirror], { timeoutMs: 15 * MIN });
  // apt inside the build must reach the same mirror with the same settings (e.g. a snapshot
  // mirror needs Check-Valid-Until false). Only Debian sources: a third-party one would lack its key.
  const sources = aptSources().filter((src) => {
    const uris = [...readFileSync(src, 'utf8').matchAll(/^(?:URIs:|deb(?:\s+\[[^\]]*\])?)\s+(\S+)/gm)].map((m) => m[1]!);
    return uris.length > 0 && uris.every((u) => /\/debian(-security)?\/?$/.test(u));
  });
  if (sources.length > 0) await rm(join(dir, 'etc/apt/sources.list'), { force: true }); // else keep debootstrap's
  for (const src of sources) await copyFile(src, join(dir, src));
  // apt.conf.d settings, but not hooks that call programs of this machine (packagekit, appstream).
  for (const f of listDir('/etc/apt/apt.conf.d')) {
    const text = readFileSync(join('/etc/apt/apt.conf.d', f), 'utf8');
    if (!existsSync(join(dir, 'etc/apt/apt.conf.d', f)) && !/Invoke|Pre-Install-Pkgs/.test(text)) {
      await writeFile(join(dir, 'etc/apt/apt.conf.d', f), text);
    }
  }
  // Slim like debian:bookworm-slim: no package caches, docs, man pages or translations, now or later.
  await writeFile(join(dir, 'etc/dpkg/dpkg.cfg.d/docker'), [
    'path-exclude /usr/share/doc/*', 'path-include /usr/share/doc/*/copyright', 'path-exclude /usr/share/man/*',
    'path-exclude /usr/share/groff/*', 'path-exclude /usr/share/info/*', 'path-exclude /usr/share/lintian/*',
    'path-exclude /usr/share/linda/*', 'path-exclude /usr/share/locale/*', 'path-include /usr/share/locale/locale.alias', ''].join('\n'));
  await run('sh', ['-c', 'cd "$1" && rm -rf var/lib/apt/lists/* var/cache/apt/*.bin var/cache/apt/archives/*.deb dev/* usr/share/man/* usr/share/info/* ' +
    'usr/share/groff/* usr/share/lintian/* && find usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete && ' +
    'find usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +', 'sh', dir], { timeoutMs: MIN });
  // The official image has user node, uid/gid 1000.
  await run('chroot', [dir, 'groupadd', '--gid', '1000', 'node'], { timeoutMs: MIN });
  await run('chroot', [dir, 'useradd', '--uid', '1000', '--gid', 'node', '--shell', '/bin/bash', '--create-home', 'node'], { timeoutMs: MIN });
  await run('tar', ['--numeric-owner', '-C', dir, '-cf', `${ROOTFS_TAR}.tmp`, '.'], { timeoutMs: 5 * MIN });
  await rename(`${ROOTFS_TAR}.tmp`, ROOTFS_TAR);
  await rm(dir, { recursive: true, force: true });
}

/** The node image the Dockerfile starts FROM must be what this machine can imitate. */
function checkDockerfileBase(): void {
  const text = readFileSync(join(REPO_DIR, 'Dockerfile'), 'utf8');
  const froms = [...text.matchAll(/^FROM\s+(\S+)/gim)].map((m) => m[1]!);
  const stages = new Set([...text.matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gim)].map((m) => m[1]!));
  const want = `node:${process.versions.node.split('.')[0]}-bookworm-slim`;
  for (const f of froms.filter((x) => !stages.has(x))) {
    if (f !== want && `docker.io/library/${f}` !== BASE_IMAGE) {
      throw new Error(`the Dockerfile starts FROM ${f}; the tests can only make a look-alike of ${want} (Node.js ${process.version} of this machine)`);
    }
  }
}

/**
 * Makes BASE_IMAGE when missing or made from another Node.js: the cached Debian rootfs plus this
 * machine's node, npm, headers (so node-gyp builds sqlite3 offline) and CA bundle, and an npmrc
 * pointing at this machine's npm registry.
 */
export async function ensureBaseImage(log: (m: string) => void): Promise<void> {
  checkDockerfileBase();
  const have = await imageConfig(BASE_IMAGE).catch(() => undefined);
  if (have?.Env?.includes(`NODE_VERSION=${process.versions.node}`)) return;
  if (have) await buildah(['rmi', '-f', BASE_IMAGE]);
  if (!existsSync(ROOTFS_TAR)) await bootstrapRootfs(log);
  log(`making ${BASE_IMAGE} from ${ROOTFS_TAR} and Node.js ${process.version} of this machine`);
  const ctr = (await buildah(['from', 'scratch'])).stdout.trim();
  try {
    const root = (await buildah(['mount', ctr])).stdout.trim();
    await run('tar', ['--numeric-owner', '-C', root, '-xpf', ROOTFS_TAR], { timeoutMs: 5 * MIN });
    const prefix = dirname(dirname(process.execPath)); // e.g. /usr for /usr/bin/node
    const npmDir = dirname(dirname(realpathSync(join(prefix, 'bin', 'npm')))); // …/lib/node_modules/npm
    for (const d of ['usr/local/bin', 'usr/local/lib/node_modules', 'usr/local/include', 'usr/local/etc', 'usr/local/share/ca-certificates', 'etc/ssl/certs']) {
      await mkdir(join(root, d), { recursive: true });
    }
    await copyFile(process.execPath, join(root, 'usr/local/bin/node'));
    await chmod(join(root, 'usr/local/bin/node'), 0o755);
    await run('cp', ['-a', npmDir, join(root, 'usr/local/lib/node_modules/npm')], { timeoutMs: MIN });
    await run('cp', ['-a', join(prefix, 'include/node'), join(root, 'usr/local/include/node')], { timeoutMs: MIN });
    // The OpenSSL configuration headers of other platforms (~50 MB) are of no use in this image.
    const arch = { x64: 'linux-x86_64', arm64: 'linux-aarch64' }[process.arch as string];
    const archs = join(root, 'usr/local/include/node/openssl/archs');
    if (arch && existsSync(join(archs, arch))) {
      for (const a of listDir(archs)) if (a !== arch) await rm(join(archs, a), { recursive: true, force: true });
    }
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'usr/local/bin/npx'));
    // This machine may reach the registry through a TLS-inspecting proxy: its CAs go in too.
    await copyFile('/etc/ssl/certs/ca-certificates.crt', join(root, 'etc/ssl/certs/ca-certificates.crt'));
    if (existsSync('/usr/local/share/ca-certificates')) {
      await run('cp', ['-a', '/usr/local/share/ca-certificates/.', join(root, 'usr/local/share/ca-certificates/')], { timeoutMs: MIN });
    }
    const registry = (await run('npm', ['config', 'get', 'registry'], { timeoutMs: MIN })).stdout.trim();
    await writeFile(join(root, 'usr/local/etc/npmrc'),
      `registry=${registry}\ncafile=/etc/ssl/certs/ca-certificates.crt\n# node-gyp builds from the copied headers instead of downloading them\nnodedir=/usr/local\n`);
    await buildah(['umount', ctr]);
    await buildah(['config', '--env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--env', `NODE_VERSION=${process.versions.node}`, '--env', 'NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
      '--cmd', 'node', ctr]);
    await buildah(['commit', '--format', 'docker', '--rm', ctr, BASE_IMAGE], 5 * MIN);
  } catch (err) {
    await buildah(['rm', ctr], MIN, { allowFail: true });
    throw err;
  }
}

/** Builds the repository's Dockerfile; the whole log also goes to BUILD_LOG. */
export async function buildImage(tag = TEST_IMAGE): Promise<{ seconds: number }> {
  await mkdir(STORE_DIR, { recursive: true });
  await writeFile(BUILD_LOG, '');
  const started = Date.now();
  try {
    await buildah(['bud', '--isolation', 'chroot', '--format', 'docker', '--layers', '--pull=never',
      '-f', join(REPO_DIR, 'Dockerfile'), '-t', tag, REPO_DIR], 20 * MIN, { logFile: BUILD_LOG });
  } catch (err) {
    throw new Error(`buildah bud failed (full log: ${BUILD_LOG})\n${(err as Error).message}`);
  }
  return { seconds: (Date.now() - started) / 1000 };
}

/** The Docker-format image config (what `docker inspect` shows under Config). */
export interface ImageConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, unknown> | null;
  Volumes?: Record<string, unknown> | null;
  Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number } | null;
}

export async function imageConfig(image: string): Promise<ImageConfig> {
  const out = JSON.parse((await buildah(['inspect', '--type', 'image', image])).stdout) as { Docker?: { config?: ImageConfig } };
  if (!out.Docker?.config) throw new Error(`${image} has no Docker config (built without --format docker?)`);
  return out.Docker.config;
}

/** The size `buildah images` reports (all layers, e.g. "229 MB"). */
export async function imageSize(image: string): Promise<string> {
  return (JSON.parse((await buildah(['images', '--json', image])).stdout) as Array<{ size?: string }>)[0]?.size ?? '?';
}

let containers = 0;
/** A container of `image`, named after this process for whoever reads `buildah containers`. */
async function newContainer(image: string): Promise<string> {
  return (await buildah(['from', '--pull=never', '--name', `davgate-test-${process.pid}-${containers++}`, image])).stdout.trim();
}

/** Runs fn on the root filesystem of a fresh container of `image`, then removes the container. */
export async function withRootfs<T>(image: string, fn: (root: string) => Promise<T>): Promise<T> {
  const ctr = await newContainer(image);
  try {
    return await fn((await buildah(['mount', ctr])).stdout.trim());
  } finally {
    await buildah(['rm', ctr], MIN, { allowFail: true });
  }
}

export interface Container {
  /** The gateway's pid (a node process inside the container) on this machine. */
  gatewayPid: number;
  stdout(): string; stderr(): string;
  /** Resolves with the container's exit once it has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** curl in the container's network namespace: status and body of one request. */
  curl(url: string, args?: string[]): Promise<{ status: number; body: Buffer }>;
  /** Runs argv in the container (like `docker exec`): its namespaces, root, cwd, user and environment. */
  exec(argv: string[], timeoutMs?: number): Promise<RunResult>;
  /** Ends the container (SIGKILL if still running) and removes it. Idempotent. */
  remove(): Promise<void>;
}

/** Pids of all descendants of `pid`, from /proc. */
async function descendants(pid: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for (const e of (await readdir('/proc')).filter((x) => /^\d+$/.test(x))) {
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    const m = /^\) \S (\d+)/.exec(stat.slice(stat.lastIndexOf(')'))); // comm may contain ')' and spaces
    if (m) parent.set(Number(e), Number(m[1]));
  }
  const out: number[] = [];
  const walk = (p: number) => { for (const [c, pp] of parent) if (pp === p) { out.push(c); walk(c); } };
  walk(pid);
  return out;
}

/**
 * Runs `image` with its own ENTRYPOINT and CMD in a private network namespace, `mounts` (container
 * path → host dir) bind-mounted over the image's VOLUMEs; resolves once the gateway prints its
 * listening lines.
 */
export async function runContainer(image: string, mounts: Record<string, string>, startTimeoutMs = 60_000): Promise<Container> {
  const cfg = await imageConfig(image);
  const argv = [...(cfg.Entrypoint ?? []), ...(cfg.Cmd ?? [])];
  const ctr = await newContainer(image);
  const scratch = await mkdtemp(join(tmpdir(), 'davgate-image-'));
  let child: ReturnType<typeof spawn> | undefined;
  let gatewayPid = -1;
  let removed: Promise<void> | undefined;
  const remove = (): Promise<void> => (removed ??= (async () => {
    if (gatewayPid > 0) { try { process.kill(gatewayPid, 'SIGKILL'); } catch { /* gone */ } }
    if (child) await terminate(child, 5_000);
    await buildah(['rm', ctr], MIN, { allowFail: true });
    await removeDir(scratch);
  })());
  try {
    // buildah 1.28 mounts the image's VOLUMEs over -v mounts at the same paths: drop them first.
    await buildah(['config', ...Object.keys(mounts).flatMap((p) => ['--volume', `${p}-`]), ctr]);
    const volumes = Object.entries(mounts).flatMap(([inside, host]) => ['-v', `${host}:${inside}`]);
    child = spawn('unshare', ['--net', '--fork', '--kill-child', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh',
      'buildah', ...STORAGE, 'run', '--isolation', 'chroot', ...volumes, ctr, '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    const c = child;
    const unreap = [reapOnExit(c.pid)];
    let out = '', err = '';
    c.stdout!.on('data', (b: Buffer) => { out = (out + b.toString()).slice(-MAX_OUTPUT); });
    c.stderr!.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-MAX_OUTPUT); });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      c.once('exit', (code, signal) => { for (const u of unreap) u(); resolve({ code, signal }); });
    });
    const deadline = Date.now() + startTimeoutMs;
    while (!/serving WebDAV at/.test(out) || !/admin at/.test(out)) {
      if (c.exitCode !== null || c.signalCode !== null || Date.now() > deadline) {
        throw new Error(`the container did not start (${c.exitCode !== null ? `exit ${c.exitCode}` : `no listening lines within ${startTimeoutMs / 1000} s`})\n` +
          `command: ${argv.join(' ')}\n--- stdout ---\n${tail(out)}\n--- stderr ---\n${tail(err)}`);
      }
      await sleep(100);
    }
    const nodes: number[] = [];
    for (const p of await descendants(c.pid!)) {
      if ((await readFile(`/proc/${p}/comm`, 'utf8').catch(() => '')).trim() === 'node') nodes.push(p);
    }
    if (nodes.length !== 1) throw new Error(`expected one node process in the container, found ${nodes.length}`);
    gatewayPid = nodes[0]!;
    unreap.push(reapOnExit(gatewayPid)); // buildah killed hard could leave the gateway behind
    const netns = `--net=/proc/${c.pid}/ns/net`;
    let n = 0;
    return {
      gatewayPid,
      stdout: () => out,
      stderr: () => err,
      exited,
      async curl(url, args = []) {
        const file = join(scratch, `body-${n++}`);
        const r = await run('nsenter', [netns, 'curl', '-sS', '--max-time', '30', '-o', file, '-w', '%{http_code}', ...args, url], { timeoutMs: 40_000 });
        const body = await readFile(file).catch(() => Buffer.alloc(0));
        await rm(file, { force: true });
        return { status: Number(r.stdout.trim()), body };
      },
      async exec(cmd, timeoutMs = 30_000) {
        const env = Object.fromEntries((await readFile(`/proc/${gatewayPid}/environ`, 'utf8')).split('\0').filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
        const status = await readFile(`/proc/${gatewayPid}/status`, 'utf8');
        const [uid, gid] = [/^Uid:\s+(\d+)/m, /^Gid:\s+(\d+)/m].map((re) => re.exec(status)![1]!);
        return run('nsenter', ['-t', String(gatewayPid), '-m', '-u', '-i', '-n', '-r', '-w', '-S', uid!, '-G', gid!, '--', ...cmd],
          { timeoutMs, allowFail: true, env });
      },
      remove,
    };
  } catch (err) {
    await remove();
    throw err;
  }
}
