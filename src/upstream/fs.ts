import nodeFs, { constants as fsc, promises as fsp, realpathSync, statSync, createWriteStream, type Stats } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BadRequestError, ConfigError, ConflictError, DavgateError, ExistsError, ForbiddenPathError,
  IncompleteBodyError, IsADirectoryError, NotFoundError, PreconditionFailedError, fromSystemError,
} from '../errors.js';
import { canonicalSegments, joinPath, nameOf } from '../davpath.js';
import type { CopyOptions, Entry, MoveOptions, Quota, ReadOptions, Upstream, WriteOptions } from './types.js';
import { checkRange, checkSize, checkTransfer, SizeCheck } from './checks.js';
import { targetOf } from './collect.js';
import { isTemp, Temporaries } from './fs-temp.js';

// Upstream backed by a local (or network-mounted) directory.
//
// Confinement: a canonical path is joined to the real root, then its deepest existing
// component is realpath'd and must still lie inside the root, so a symlink leaving the
// root is refused while symlinks staying inside are followed. This is check-then-use: it
// keeps client-supplied paths in, not a local user racing symlink swaps inside the root.

const SINK_PIECE = 1024 * 1024;
const LIST_BATCH = 64; // lstats in flight per listing: cheap locally, hides latency on NFS/CephFS
const WRITE_HWM = 1 << 20;
const COPY_FLAGS = fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE;

const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;
/** ENOTDIR too: "/file/x" is simply absent. */
const missing = (e: unknown): boolean => errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR';
const noParent = (path: string): ConflictError => new ConflictError(`parent collection of ${path} does not exist`);

/** Await `p`, turning system errors into DavgateErrors (absent path → NotFoundError). */
async function sys<T>(path: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw missing(e) ? new NotFoundError(path) : fromSystemError(e, path);
  }
}

/** lstat through the callback API: half the cost of fs/promises per call, and a listing makes one per entry. */
function lstatFast(host: string): Promise<Stats> {
  return new Promise((resolve, reject) => nodeFs.lstat(host, (err, st) => (err ? reject(err) : resolve(st))));
}

async function statOrNull(host: string, follow = false): Promise<Stats | null> {
  return (follow ? fsp.stat(host) : fsp.lstat(host)).catch((e: unknown) => {
    if (missing(e)) return null;
    throw e;
  });
}

function validatorOf(st: Stats): string {
  // A directory's size means nothing portable (CephFS reports its entry count, lazily): leave it out.
  const size = st.isDirectory() ? 0 : st.size;
  // mtime in µs: a double in ms holds it to ~0.25 µs. (BigInt stats would be exact to the ns,
  // but cost twice as much per entry, and listings stat every entry.)
  return `${st.ino.toString(16)}-${size.toString(16)}-${Math.round(st.mtimeMs * 1000).toString(16)}`;
}

/** null for anything neither file nor directory (fifo, socket, device): never exposed. */
function toEntry(path: string, st: Stats): Entry | null {
  const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : null;
  if (kind === null) return null;
  const mtimeMs = st.mtimeMs;
  const birthtimeMs = st.birthtimeMs > 0 ? st.birthtimeMs : mtimeMs;
  return { name: nameOf(path), path, kind, size: kind === 'dir' ? 0 : st.size, mtimeMs, birthtimeMs, validator: validatorOf(st) };
}

export class FsUpstream implements Upstream {
  readonly id: string;
  /** Real (symlink-free) absolute root. */
  readonly root: string;
  private readonly prefix: string;
  readonly #temps: Temporaries;

  /** Synchronous, for start-up; `FsUpstream.open` is the async equivalent. */
  constructor(root: string) {
    try {
      this.root = realpathSync.native(resolve(root));
      const st = statSync(this.root);
      if (!st.isDirectory()) throw new ConfigError(`upstream root ${root} is not a directory`);
      this.#temps = new Temporaries(this.root, st.dev);
    } catch (e) {
      throw e instanceof DavgateError ? e : new ConfigError(`upstream root ${root}: ${(e as Error).message}`);
    }
    this.prefix = this.root.endsWith(sep) ? this.root : this.root + sep;
    this.id = 'fs:' + this.root;
  }

  /**
   * The upstream at `root`, after removing the temporary files of uploads that a crash cut short
   * (idle for `tempMaxAge`: another gateway on the same directory may be writing the younger
   * ones); then swept again every quarter of that.
   */
  static async open(root: string, opts: { tempMaxAge?: number } = {}): Promise<FsUpstream> {
    const real = await fsp.realpath(resolve(root)).catch((e: Error) => {
      throw new ConfigError(`upstream root ${root}: ${e.message}`);
    });
    const up = new FsUpstream(real);
    if (opts.tempMaxAge !== undefined) await up.#temps.sweepEvery(opts.tempMaxAge);
    return up;
  }

  async close(): Promise<void> {
    this.#temps.stop();
  }

  /** Remove temporary upload files idle for longer than `maxAgeMs`; returns how many. */
  sweepTemporaries(maxAgeMs: number): Promise<number> {
    return this.#temps.sweep(maxAgeMs);
  }

  private inside(real: string): boolean {
    return real === this.root || real.startsWith(this.prefix);
  }

  /** Host path of a DAV path, refusing anything that could leave the root. */
  private async confine(path: string): Promise<string> {
    const segs = canonicalSegments(path);
    // Partial writes are never addressable.
    if (segs.some(isTemp)) throw new ForbiddenPathError('reserved name');
    const host = join(this.root, ...segs);
    if (!this.inside(host)) throw new ForbiddenPathError('outside the root');
    for (let p = host; ; p = dirname(p)) {
      let real: string;
      try {
        real = await fsp.realpath(p);
      } catch (e) {
        if (missing(e) && p !== this.root) continue;
        throw fromSystemError(e, path);
      }
      if (!this.inside(real)) throw new ForbiddenPathError('symbolic link leads outside the root');
      return host;
    }
  }

  private async requireParentDir(host: string, path: string): Promise<Stats> {
    const st = await fsp.stat(dirname(host)).catch((e: unknown) => {
      throw missing(e) ? noParent(path) : fromSystemError(e, path);
    });
    if (!st.isDirectory()) throw new ConflictError(`parent of ${path} is not a collection`);
    return st;
  }

  async stat(path: string): Promise<Entry> {
    const host = await this.confine(path);
    const entry = toEntry(path, await sys(path, fsp.stat(host)));
    if (!entry) throw new NotFoundError(path);
    return entry;
  }

  async *list(path: string): AsyncGenerator<Entry, void, undefined> {
    const host = await this.confine(path);
    const dir = await fsp.opendir(host, { bufferSize: 256 }).catch((e: unknown) => {
      throw fromSystemError(e, path); // ENOTDIR here means NotADirectoryError, not absence
    });
    let batch: string[] = [];
    // One batch is stat'ed while the one before is consumed: the thread pool and the consumer
    // (a PROPFIND writing XML) work at the same time. A rejection is seen when it is awaited;
    // a consumer that stops early leaves at most one batch behind, its failure ignored.
    let ahead: Promise<Entry[]> | undefined;
    const startBatch = (names: string[]): Promise<Entry[]> => {
      const p = this.statBatch(host, path, names);
      p.catch(() => {});
      return p;
    };
    // A consumer that stops early ends this for-await, which closes the Dir.
    for await (const d of dir) {
      if (isTemp(d.name)) continue;
      batch.push(d.name);
      if (batch.length < LIST_BATCH) continue;
      const next = startBatch(batch);
      batch = [];
      if (ahead) yield* await ahead;
      ahead = next;
    }
    const last = startBatch(batch);
    if (ahead) yield* await ahead;
    yield* await last;
  }

  private async statBatch(dirHost: string, dirPath: string, names: string[]): Promise<Entry[]> {
    const all = await Promise.all(names.map((n) => this.entryAt(join(dirHost, n), joinPath(dirPath, n))));
    return all.filter((e): e is Entry => e !== null);
  }

  private async entryAt(host: string, path: string): Promise<Entry | null> {
    try {
      let st = await lstatFast(host);
      if (st.isSymbolicLink()) {
        if (!this.inside(await fsp.realpath(host))) return null;
        st = await fsp.stat(host);
      }
      return toEntry(path, st);
    } catch (e) {
      if (missing(e) || errCode(e) === 'ELOOP') return null; // vanished since readdir, dangling or looping link
      throw fromSystemError(e, path);
    }
  }

  async read(path: string, { offset, length, expectValidator, sink }: ReadOptions): Promise<Buffer> {
    checkRange(offset, length);
    const host = await this.confine(path);
    // O_NONBLOCK: a fifo must not hang a thread-pool thread in open(2); no effect on regular files.
    const fh = await sys(path, fsp.open(host, fsc.O_RDONLY | fsc.O_NONBLOCK));
    try {
      const st = await fh.stat();
      if (st.isDirectory()) throw new IsADirectoryError();
      if (!st.isFile()) throw new NotFoundError(path);
      if (expectValidator !== undefined && validatorOf(st) !== expectValidator) throw new PreconditionFailedError(`${path} changed upstream`);
      // Bounded by the size just validated: never bytes appended by a later version.
      const want = Math.max(0, Math.min(length, st.size - offset));
      const buf = targetOf(sink, want);
      // With a sink, in pieces: a reader streams the first while the next is read.
      const piece = sink ? SINK_PIECE : want;
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, Math.min(piece, want - got), offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
        sink?.progress(got);
      }
      return got === want ? buf : buf.subarray(0, got);
    } catch (e) {
      throw fromSystemError(e, path);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async write(path: string, body: Readable, { size }: WriteOptions = {}): Promise<Entry> {
    checkSize(size);
    const host = await this.confine(path);
    if (host === this.root) throw new IsADirectoryError();
    const parent = await this.requireParentDir(host, path);
    const old = await sys(path, statOrNull(host, true)); // null also for a dangling link, which rename replaces
    if (old?.isDirectory()) throw new IsADirectoryError();

    const tmp = await sys(path, this.#temps.create(host, parent.dev));
    const sink = createWriteStream(tmp, { flags: 'wx', highWaterMark: WRITE_HWM });
    let bodyErr: unknown;
    let sinkErr: unknown;
    body.once('error', (e) => { bodyErr = e; });
    // The pipeline destroys the body with the sink's error too: remember which one failed first.
    // Only a system error of the file is the disk's (ENOSPC, EIO, EROFS); a stream error is the body's.
    sink.once('error', (e: NodeJS.ErrnoException) => { if (e !== bodyErr && typeof e.errno === 'number') sinkErr ??= e; });
    let committing = false;
    try {
      await pipeline(body, new SizeCheck(size), sink);
      committing = true;
      if (old) await fsp.chmod(tmp, old.mode & 0o7777); // a replaced file keeps its permissions
      await fsp.rename(tmp, host);
      this.#temps.committed(tmp);
      const entry = toEntry(path, await fsp.stat(host));
      if (!entry) throw new NotFoundError(path);
      return entry;
    } catch (e) {
      if (!sink.closed) await new Promise<void>((r) => sink.once('close', () => r()));
      await this.#temps.discard(tmp);
      if (e instanceof DavgateError) throw e;
      if (sinkErr !== undefined) throw fromSystemError(sinkErr, path); // our disk: full, read-only, ...
      if (e === bodyErr && !committing) throw e; // the client's abort, as the contract allows
      if (errCode(e) === 'ERR_STREAM_PREMATURE_CLOSE') throw new IncompleteBodyError('request body aborted');
      throw fromSystemError(e, path);
    }
  }

  async mkdir(path: string): Promise<void> {
    const host = await this.confine(path);
    if (host === this.root) throw new ExistsError();
    await fsp.mkdir(host).catch((e: unknown) => {
      throw missing(e) ? noParent(path) : fromSystemError(e, path);
    });
  }

  async remove(path: string): Promise<void> {
    const host = await this.confine(path);
    if (host === this.root) throw new ForbiddenPathError('the root cannot be removed');
    const st = await sys(path, fsp.lstat(host));
    await sys(path, st.isDirectory() ? fsp.rm(host, { recursive: true }) : fsp.unlink(host));
  }

  /**
   * Shared checks of move and copy. Move looks at links themselves (rename moves the link),
   * copy follows them (it copies content). `same` when both names are one object already.
   */
  private async prepare(from: string, to: string, overwrite: boolean, follow: boolean) {
    checkTransfer(from, to);
    const src = await this.confine(from);
    const dst = await this.confine(to);
    const st = await sys(from, follow ? fsp.stat(src) : fsp.lstat(src));
    if (follow && !st.isFile() && !st.isDirectory()) throw new NotFoundError(from);
    await this.requireParentDir(dst, to);
    let same: 'case' | 'link' | null = null;
    try {
      if (st.isDirectory()) {
        // Through symlinked directories a lexically unrelated destination may still be inside.
        const realSrc = await fsp.realpath(src);
        const realDst = join(await fsp.realpath(dirname(dst)), basename(dst));
        if (realDst === realSrc || realDst.startsWith(realSrc + sep)) throw new ConflictError('destination lies inside the source');
      }
      const d = await statOrNull(dst);
      if (d && d.ino === st.ino && d.dev === st.dev) {
        // One object: a case change on a case-insensitive store, or two hard links.
        same = from.toLowerCase() === to.toLowerCase() ? 'case' : 'link';
        if (same === 'case' && follow) throw new ForbiddenPathError('source and destination are the same');
        if (same === 'link' && !overwrite) throw new ExistsError(`${to} already exists`);
      } else if (d) {
        if (!overwrite) throw new ExistsError(`${to} already exists`);
        // rename/copy replace a file atomically; a directory or a change of kind needs removal first.
        if (d.isDirectory() || st.isDirectory() !== d.isDirectory()) await fsp.rm(dst, { recursive: true, force: true });
      }
    } catch (e) {
      throw fromSystemError(e, to);
    }
    return { src, dst, st, same };
  }

  async move(from: string, to: string, { overwrite }: MoveOptions): Promise<void> {
    const { src, dst, st, same } = await this.prepare(from, to, overwrite, false);
    try {
      // rename(2) between two hard links of one file is a no-op that keeps both names.
      if (same === 'link') await fsp.unlink(src);
      else await fsp.rename(src, dst);
    } catch (e) {
      if (errCode(e) === 'EINVAL') throw new ConflictError('destination lies inside the source');
      if (errCode(e) !== 'EXDEV') throw fromSystemError(e, to);
      // A mount point inside the root: copy, then remove the source.
      await sys(to, st.isDirectory() ? this.copyTree(src, dst) : this.copyFileAtomic(src, dst));
      await sys(from, fsp.rm(src, { recursive: true, force: true }));
    }
  }

  async copy(from: string, to: string, { overwrite, shallow = false }: CopyOptions): Promise<void> {
    const { src, dst, st, same } = await this.prepare(from, to, overwrite, true);
    if (same) return; // a hard link of the source: already the same content
    if (!st.isDirectory()) await sys(to, this.copyFileAtomic(src, dst));
    else await sys(to, shallow ? fsp.mkdir(dst) : this.copyTree(src, dst));
  }

  private async copyFileAtomic(src: string, dst: string): Promise<void> {
    const tmp = await this.#temps.create(dst, (await fsp.stat(dirname(dst))).dev);
    try {
      await fsp.copyFile(src, tmp, COPY_FLAGS);
      await fsp.rename(tmp, dst);
      this.#temps.committed(tmp);
    } catch (e) {
      await this.#temps.discard(tmp);
      throw e;
    }
  }

  /** dst must not exist. Linked files inside the root are copied as content; linked directories are skipped (loops). */
  private async copyTree(src: string, dst: string): Promise<void> {
    await fsp.mkdir(dst);
    for await (const d of await fsp.opendir(src, { bufferSize: 256 })) {
      if (isTemp(d.name)) continue;
      const s = join(src, d.name);
      let st = await statOrNull(s);
      if (st?.isSymbolicLink()) {
        const real = await fsp.realpath(s).catch(() => null);
        st = real !== null && this.inside(real) ? await statOrNull(real) : null;
        if (!st?.isFile()) continue;
      }
      if (st?.isDirectory()) await this.copyTree(s, join(dst, d.name));
      else if (st?.isFile()) await fsp.copyFile(s, join(dst, d.name), COPY_FLAGS);
    }
  }

  async setMtime(path: string, mtimeMs: number): Promise<void> {
    if (!Number.isFinite(mtimeMs)) throw new BadRequestError('invalid modification time');
    const host = await this.confine(path);
    const st = await sys(path, fsp.stat(host));
    await sys(path, fsp.utimes(host, st.atimeMs / 1000, mtimeMs / 1000));
  }

  async quota(path: string): Promise<Quota> {
    const s = await sys(path, fsp.statfs(await this.confine(path)));
    return { availableBytes: s.bavail * s.bsize, usedBytes: (s.blocks - s.bfree) * s.bsize };
  }
}
