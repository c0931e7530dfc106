// Shared pieces of the mount e2e tests (rclone, davfs2, gvfs): mountinfo lookups, FUSE unmount
// fallbacks, hashing and listing trees, the sample tree they copy in, running a command to completion.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rmdir, stat, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { removeDir, sleep } from './gateway-process.js';

/** Decodes the octal escapes (\040 etc.) of /proc/self/mountinfo fields. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** True when `path` is a mount point in /proc/self/mountinfo. */
export async function isMounted(path: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => {
    const f = line.split(' ');
    return f[4] !== undefined && unescapeMountField(f[4]) === path;
  });
}

/**
 * Unmounts a FUSE mount: `fusermount3 -u`, `fusermount -u`, with `lazyFusermount` also
 * `fusermount3 -uz`, then `umount -l`. True as soon as one of them succeeds.
 */
export function unmountFuse(mountpoint: string, opts: { lazyFusermount?: boolean } = {}): boolean {
  const attempts: Array<[string, string[]]> = [
    ['fusermount3', ['-u', mountpoint]],
    ['fusermount', ['-u', mountpoint]],
    ...(opts.lazyFusermount ? [['fusermount3', ['-uz', mountpoint]] as [string, string[]]] : []),
    ['umount', ['-l', mountpoint]],
  ];
  for (const [cmd, args] of attempts) {
    const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    if (r.status === 0) return true;
  }
  return false;
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  return sha256(await readFile(path));
}

/** Retries `fn` until it stops throwing, or rethrows its last error after `timeoutMs`. */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs = 5_000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await sleep(stepMs);
    }
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** All regular files under `root`, as '/'-separated relative paths, sorted. */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(root, join(e.parentPath ?? e.path, e.name)).split(sep).join('/'));
  }
  return out.sort();
}

/** The file with an odd name (space, non-ASCII, URL-special characters) in the sample tree. */
export const ODD_FILE = 'sp ace/ü ñ#%&+.txt';

/**
 * The tree the mount tests copy in, relative path -> content (fresh random bytes on each call):
 * an empty file, a 1-byte file, 100 KiB, a text file and 5 MiB in nested directories; with `deep`
 * a file three directories down, with `oddName` ODD_FILE. Every path is prefixed with `prefix`.
 */
export function sampleTree(opts: { deep?: boolean; oddName?: boolean; prefix?: string } = {}): Map<string, Buffer> {
  const entries: Array<[string, Buffer]> = [
    ['empty.bin', Buffer.alloc(0)],
    ['one.bin', randomBytes(1)],
    ['a/hundred.bin', randomBytes(100 * 1024)],
    ['a/b/note.txt', Buffer.from('hello from davgate e2e\n'.repeat(10))],
    ['a/b/c/five.bin', randomBytes(5 * 1024 * 1024)],
  ];
  if (opts.deep) entries.push(['x/y/z/deep.bin', randomBytes(4096 + 7)]);
  if (opts.oddName) entries.push([ODD_FILE, Buffer.from('odd name\n')]);
  const prefix = opts.prefix ?? '';
  return new Map(entries.map(([rel, data]) => [prefix + rel, data]));
}

/** Writes `files` (relative path -> content) under `root`, then creates the (empty) `dirs`. */
export async function writeTree(root: string, files: ReadonlyMap<string, Buffer>, dirs: readonly string[] = []): Promise<void> {
  for (const [rel, data] of files) {
    await mkdir(join(root, rel, '..'), { recursive: true });
    await writeFile(join(root, rel), data);
  }
  for (const d of dirs) await mkdir(join(root, d), { recursive: true });
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  error?: Error;
}

export interface RunOptions {
  /** Environment of the command; process.env when absent. */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed. */
  input?: string | Buffer;
  /** SIGKILL after this long (default 20 s). */
  timeoutMs?: number;
  /**
   * Resolve this long after the command exited even when its output is still open (a daemon it
   * forked may hold it). Without it, resolve only once the output is closed.
   */
  exitGraceMs?: number;
}

/** Runs a command to completion; never rejects (a spawn failure is reported in `error`). */
export function runCmd(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    let stderr = '';
    let child: ChildProcess;
    let done = false;
    const finish = (r: Pick<RunResult, 'code' | 'signal' | 'error'>): void => {
      if (done) return;
      done = true;
      clearTimeout(killTimer);
      resolve({ ...r, stdout: Buffer.concat(out), stderr });
    };
    const killTimer = setTimeout(() => child?.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    try {
      child = spawn(cmd, args, { env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      finish({ code: null, signal: null, error: err as Error });
      return;
    }
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (c: string) => (stderr += c));
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
    child.once('error', (err) => finish({ code: null, signal: null, error: err }));
    child.once('close', (code, signal) => finish({ code, signal }));
    const grace = opts.exitGraceMs;
    if (grace !== undefined) {
      child.once('exit', (code, signal) => {
        setTimeout(() => finish({ code, signal }), grace).unref();
      });
    }
  });
}

/**
 * After a mount test: removes `work` unless `mountpoint` (inside it) is still mounted. Never rm -rf a
 * possibly still mounted directory: the mountpoint itself is removed with rmdir only.
 */
export async function removeWorkUnlessMounted(label: string, work: string, mountpoint: string, stillMounted: boolean): Promise<void> {
  if (mountpoint && !stillMounted) {
    await rmdir(mountpoint).catch(() => undefined);
    await removeDir(work);
  } else if (work) {
    console.log(`${label}: ${mountpoint} still mounted; leaving ${work} in place`);
  }
}
