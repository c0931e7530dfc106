import { constants as C } from 'node:fs';
import { mkdir, open, readdir, rename, rm, unlink, lstat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { crc32 } from '@node-rs/crc32';
import { CacheCorruptError } from '../errors.js';
import { BlockReader, CHUNK, blockFileName, checksumTable, readChecksumTable, writeBlockFile } from './blockfile.js';
import { LockFile } from './lockfile.js';
import { INDEX_FILE, loadIndex, removeIndex, saveIndex } from './blockindex.js';
import { scanBlockFiles, strayShards } from './blockscan.js';
import { PinnedKeys } from './pinned-keys.js';

export { BlockReader, CHUNK } from './blockfile.js';

// The sandbox (docs/architecture.md, Block store). Layout under one root, created 0700:
//   <root>/LOCK                              pid of the owning process
//   <root>/blocks.index                      the index saved at a clean close (blockindex.ts)
//   <root>/tmp/<random>                      blocks being written
//   <root>/blocks/<k0k1>/<key>/<ver>-<idx>-<crc>   installed blocks (format: blockfile.ts)
// `key` and `ver` are hex digests, idx and crc are hex numbers: every cache path is built
// from hex only, never from a client string. Files are opened with O_NOFOLLOW and
// directory entries are lstat'ed, so a symlink planted in the root is never followed.
//
// Concurrency: the in-memory index (#blocks) is the only truth about what is installed;
// it is touched synchronously on the event loop, so no lock is needed. A block being read
// is pinned; eviction skips pinned blocks.


export interface BlockMeta {
  readonly key: string;
  readonly version: string;
  readonly index: number;
  readonly size: number;
  readonly crc: number;
  pins: number;
  /** When the block was last installed or opened for reading (ms since epoch). */
  lastUsed: number;
}

/** A block evicted within this long of its last read counts as thrashing (the working set does not fit). */
const RECENT_MS = 60_000;

export interface BlockStoreEvents {
  onEvict?(bytes: number, blocks: number, recentlyUsed: number): void;
  onCorrupt?(): void;
  onChange?(bytes: number, count: number): void;
}

export function blockId(key: string, version: string, index: number): string {
  return `${key}/${version}-${index.toString(16)}`;
}

export class BlockStore {
  readonly root: string;
  readonly #maxBytes: number;
  readonly #high: number;
  readonly #low: number;
  readonly #events: BlockStoreEvents;
  /** Map order is LRU order: least recently used first. */
  readonly #blocks = new Map<string, BlockMeta>();
  /** Blocks per node key, so a node's blocks can be dropped or re-keyed without a scan. */
  readonly #byKey = new Map<string, Set<string>>();
  /** Keys of pinned files: never evicted. */
  readonly pinned = new PinnedKeys();
  #bytes = 0;
  #reserved = 0;
  readonly #lock: LockFile;
  /** Files found under blocks/ or tmp/ that no block owns; removed at open unless opened read-only. */
  #strays: string[] = [];
  #readOnly = false;
  /** Opened and indexed: from here on, a change makes a saved index stale. */
  #opened = false;
  #changedSinceOpen = false;

  constructor(root: string, opts: { maxBytes: number; highWatermark: number; lowWatermark: number; events?: BlockStoreEvents }) {
    this.root = root;
    this.#maxBytes = opts.maxBytes;
    this.#high = Math.floor(opts.maxBytes * opts.highWatermark);
    this.#low = Math.floor(opts.maxBytes * opts.lowWatermark);
    this.#events = opts.events ?? {};
    this.#lock = new LockFile(join(root, 'LOCK'), root);
  }

  get bytes(): number { return this.#bytes; }
  get count(): number { return this.#blocks.size; }
  get maxBytes(): number { return this.#maxBytes; }

  /**
   * Create the sandbox, take the lock file, rebuild the index from the block files. Read-only
   * (`cache stats`, `cache verify` without --repair) leaves every file as found: what does not
   * belong is only listed in `strays`. The index saved at the last clean close replaces the
   * scan unless `scan` is asked for (`cache verify`: strays are only found by scanning).
   */
  async open(opts: { readOnly?: boolean; scan?: boolean } = {}): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const st = await lstat(this.root);
    if (!st.isDirectory()) throw new CacheCorruptError(`cache root ${this.root} is not a directory`);
    await this.#lock.take();
    const tidy = !opts.readOnly;
    if (tidy) await rm(join(this.root, 'tmp'), { recursive: true, force: true });
    else for (const f of await readdir(join(this.root, 'tmp')).catch(() => [])) this.#strays.push(join(this.root, 'tmp', f));
    await mkdir(join(this.root, 'tmp'), { recursive: true, mode: 0o700 });
    await mkdir(join(this.root, 'blocks'), { recursive: true, mode: 0o700 });
    this.#readOnly = !tidy;
    const indexFile = join(this.root, INDEX_FILE);
    const saved = opts.scan ? undefined : await loadIndex(indexFile);
    // Consumed before anything changes: a crash from here on leaves no index, so the next
    // start scans the files.
    if (tidy) await removeIndex(indexFile);
    if (saved) {
      for (const b of saved) this.#add(b);
      await strayShards(join(this.root, 'blocks'), (p) => this.#stray(p, tidy));
      this.#changed();
    } else {
      await this.#scan(tidy);
    }
    this.#opened = true;
  }

  /** Files that belong to no block (see open). */
  get strays(): readonly string[] { return this.#strays; }

  async #stray(path: string, tidy: boolean): Promise<void> {
    if (tidy) await rm(path, { recursive: true, force: true });
    else this.#strays.push(path);
  }

  /** Save the index (read-only: drop a saved one this run made stale), release the lock. */
  async close(): Promise<void> {
    try {
      const indexFile = join(this.root, INDEX_FILE);
      if (!this.#opened) { /* nothing indexed: leave what is there */ }
      else if (!this.#readOnly) await saveIndex(indexFile, this.#blocks.values());
      else if (this.#changedSinceOpen) await removeIndex(indexFile);
    } finally {
      this.#opened = false;
      await this.#lock.release();
    }
  }

  /** The pid of a live process holding the cache directory `root`, if any. */
  static owner(root: string): Promise<number | undefined> {
    return LockFile.owner(join(root, 'LOCK'));
  }

  async #scan(tidy: boolean): Promise<void> {
    const stray = (p: string) => this.#stray(p, tidy);
    for (const b of await scanBlockFiles(join(this.root, 'blocks'), stray)) this.#add(b);
    this.#changed();
  }

  #dir(key: string): string {
    return join(this.root, 'blocks', key.slice(0, 2), key);
  }

  #file(b: BlockMeta): string {
    return join(this.#dir(b.key), blockFileName(b.version, b.index, b.crc));
  }

  #add(b: BlockMeta): void {
    const id = blockId(b.key, b.version, b.index);
    const old = this.#blocks.get(id);
    if (old) { this.#bytes -= old.size; this.#blocks.delete(id); this.pinned.counted(old.key, -old.size); }
    this.#blocks.set(id, b);
    this.#bytes += b.size;
    this.pinned.counted(b.key, b.size);
    let set = this.#byKey.get(b.key);
    if (!set) this.#byKey.set(b.key, (set = new Set()));
    set.add(id);
  }

  #forget(id: string): BlockMeta | undefined {
    const b = this.#blocks.get(id);
    if (!b) return undefined;
    this.#blocks.delete(id);
    this.#bytes -= b.size;
    this.pinned.counted(b.key, -b.size);
    const set = this.#byKey.get(b.key);
    set?.delete(id);
    if (set && set.size === 0) this.#byKey.delete(b.key);
    return b;
  }

  #changed(): void {
    if (this.#opened) this.#changedSinceOpen = true;
    this.#events.onChange?.(this.#bytes, this.#blocks.size);
  }

  /** Pin (or unpin) the blocks of node `key`, those cached now and those to come. */
  pinKey(key: string, on: boolean): void {
    const sizes = [...(this.#byKey.get(key) ?? [])].map((id) => this.#blocks.get(id)!.size);
    if (on) this.pinned.add(key, sizes);
    else this.pinned.delete(key, sizes);
  }

  /** Any block of this node key cached? */
  hasKey(key: string): boolean {
    return this.#byKey.has(key);
  }

  has(key: string, version: string, index: number): boolean {
    return this.#blocks.has(blockId(key, version, index));
  }

  /** `has` for a block id the caller already built (blockId). */
  hasId(id: string): boolean {
    return this.#blocks.has(id);
  }

  /**
   * Open an installed block for verified reading (BlockStore.open opens the store itself): the chunk checksums are read and checked
   * against the file name first, then every chunk is checked before it is handed out. A
   * wrong size or checksum drops the block (a miss: fetched again, never served).
   * The block is pinned (not evictable) until the handle is closed.
   */
  async openBlock(key: string, version: string, index: number, expectedSize: number): Promise<BlockReader | undefined> {
    const id = blockId(key, version, index);
    const b = this.#blocks.get(id);
    if (!b) return undefined;
    // Touch: move to the most-recently-used end.
    this.#blocks.delete(id);
    this.#blocks.set(id, b);
    b.lastUsed = Date.now();
    let fh;
    try {
      fh = await open(this.#file(b), C.O_RDONLY | C.O_NOFOLLOW);
    } catch {
      this.#drop(id, false);
      return undefined;
    }
    b.pins++;
    let ok = false;
    try {
      const table = await readChecksumTable(fh, expectedSize, b.crc);
      if (!table) return undefined;
      ok = true;
      return new BlockReader(fh, table, expectedSize, () => { b.pins--; }, () => this.#drop(id, true));
    } finally {
      if (!ok) {
        b.pins--;
        await fh.close().catch(() => {});
        this.#drop(id, true);
      }
    }
  }

  /** A whole block, verified; undefined when missing or damaged. */
  async read(key: string, version: string, index: number, expectedSize: number): Promise<Buffer | undefined> {
    const reader = await this.openBlock(key, version, index, expectedSize);
    if (!reader) return undefined;
    try {
      const out = Buffer.allocUnsafe(expectedSize);
      for (let c = 0; c < reader.chunks; c++) {
        const chunk = await reader.chunk(c);
        if (!chunk) return undefined;
        chunk.copy(out, c * CHUNK);
      }
      return out;
    } finally {
      await reader.close();
    }
  }

  /**
   * Install a block: room is made first (eviction down to the low watermark), the data and its
   * chunk checksums go to tmp/ and are renamed into place, so no half-written block ever has a
   * real name. File: the data, then one CRC-32 per CHUNK; the name carries the CRC-32 of that table.
   */
  async install(key: string, version: string, index: number, data: Buffer): Promise<void> {
    const table = checksumTable(data);
    const size = data.length + table.length;
    if (size > this.#high) return; // larger than the whole cache: serve, do not keep
    this.#reserved += size;
    try {
      await this.#makeRoom();
      // Pinned blocks (being read) cannot be evicted: rather than grow past the limit, serve
      // this block without keeping it.
      if (this.#bytes + this.#reserved > this.#maxBytes) return;
      const meta: BlockMeta = { key, version, index, size, crc: crc32(table), pins: 0, lastUsed: Date.now() };
      const tmp = join(this.root, 'tmp', randomBytes(12).toString('hex'));
      await writeBlockFile(tmp, data, table);
      const dir = this.#dir(key);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      try {
        await rename(tmp, this.#file(meta));
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw err;
      }
      this.#add(meta);
    } finally {
      this.#reserved -= size;
      this.#changed();
    }
  }

  async #makeRoom(): Promise<void> {
    if (this.#bytes + this.#reserved <= this.#high) return;
    const victims: BlockMeta[] = [];
    for (const [id, b] of this.#blocks) {
      if (this.#bytes + this.#reserved <= this.#low) break;
      if (b.pins > 0 || this.pinned.has(b.key)) continue;
      this.#forget(id);
      victims.push(b);
    }
    let freed = 0;
    let recent = 0;
    const now = Date.now();
    for (const b of victims) {
      freed += b.size;
      if (now - b.lastUsed < RECENT_MS) recent++;
      await unlink(this.#file(b)).catch(() => {});
    }
    if (victims.length) this.#events.onEvict?.(freed, victims.length, recent);
  }

  #drop(id: string, corrupt: boolean): void {
    const b = this.#forget(id);
    if (!b) return;
    if (corrupt) this.#events.onCorrupt?.();
    unlink(this.#file(b)).catch(() => {});
    this.#changed();
  }

  /** Drop every block of a node key except those of `keepVersion`. */
  async dropKey(key: string, keepVersion?: string): Promise<void> {
    const ids = [...(this.#byKey.get(key) ?? [])];
    const gone: BlockMeta[] = [];
    for (const id of ids) {
      const b = this.#blocks.get(id);
      if (!b || b.version === keepVersion || b.pins > 0) continue;
      this.#forget(id);
      gone.push(b);
    }
    await Promise.all(gone.map((b) => unlink(this.#file(b)).catch(() => {})));
    if (!this.#byKey.has(key)) await rm(this.#dir(key), { recursive: true, force: true }).catch(() => {});
    if (gone.length) this.#changed();
  }

  /** A MOVE re-keys a node: one directory rename, no refetch (docs/architecture.md, Block store). */
  async rekey(fromKey: string, toKey: string): Promise<void> {
    await this.dropKey(toKey);
    const ids = [...(this.#byKey.get(fromKey) ?? [])];
    if (ids.length === 0) return;
    await mkdir(join(this.root, 'blocks', toKey.slice(0, 2)), { recursive: true, mode: 0o700 });
    try {
      await rename(this.#dir(fromKey), this.#dir(toKey));
    } catch {
      await this.dropKey(fromKey);
      return;
    }
    for (const id of ids) {
      const b = this.#forget(id);
      if (b) this.#add({ ...b, key: toKey, pins: 0 });
    }
  }

  /** Installed blocks, least recently used first (a snapshot: callers may drop blocks meanwhile). */
  list(): BlockMeta[] {
    return [...this.#blocks.values()];
  }

  /** Still installed (not evicted or dropped since it was listed)? */
  holds(b: BlockMeta): boolean {
    return this.#blocks.get(blockId(b.key, b.version, b.index)) === b;
  }

  /** Where a block's file is; for `cache verify`, which reads every file itself. */
  fileOf(b: BlockMeta): string {
    return this.#file(b);
  }

  /** Drop one block (`corrupt`: counted as damaged). */
  drop(b: BlockMeta, corrupt: boolean): void {
    if (this.holds(b)) this.#drop(blockId(b.key, b.version, b.index), corrupt);
  }

  /** Drop every block not being read (`cache purge` without a path). */
  async dropAll(): Promise<number> {
    const keys = [...this.#byKey.keys()];
    const before = this.#blocks.size;
    for (const k of keys) await this.dropKey(k);
    return before - this.#blocks.size;
  }

  /** Remove the files listed in `strays`. */
  async removeStrays(): Promise<number> {
    const n = this.#strays.length;
    for (const p of this.#strays) await rm(p, { recursive: true, force: true });
    this.#strays = [];
    return n;
  }
}
