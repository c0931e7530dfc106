import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CacheManager } from './cachemgr.js';
import type { Node } from './nodetable.js';
import type { CachePolicy } from './policy.js';
import { filesUnder, warm } from './maintenance.js';
import { isWithin } from '../davpath.js';

// Pinned files: by a rule with `pin: true`, or pinned at run time (`davgate cache pin PATH`,
// kept in <cache.dir>/pins.json across restarts). Their blocks are never evicted (BlockStore
// skips pinned keys), and they are read into the cache at start and again after every change
// davgate hears of (a write through it, a notification, the watcher, another gateway), one
// warm at a time. Pinned bytes are bounded by their own limit: a file that would pass it is
// cached like any other (evictable) and counted as over the limit.

export interface PinStatus {
  /** Pinned at run time (rules are in the configuration). */
  paths: string[];
  pinnedBytes: number;
  limitBytes: number;
  pinnedFiles: number;
  /** Files that match a pin but did not fit under the limit. */
  overLimit: number;
}

export class Pins {
  readonly #runtime = new Set<string>();
  readonly #overLimit = new Set<string>();
  readonly #file: string;
  #queue: Promise<unknown> = Promise.resolve();

  #closed = false;
  /** Where a failed warm is reported (the gateway logs it). */
  onError: (err: unknown, path: string) => void = () => {};

  constructor(readonly cache: CacheManager, readonly policy: CachePolicy, dir: string, readonly limitBytes: number) {
    this.#file = join(dir, 'pins.json');
  }

  /** No more warms (the cache is closing); one running ends with its current files. */
  close(): void {
    this.#closed = true;
  }

  async load(): Promise<void> {
    try {
      const saved = JSON.parse(await readFile(this.#file, 'utf8')) as { paths?: unknown };
      if (Array.isArray(saved.paths)) for (const p of saved.paths) if (typeof p === 'string') this.#runtime.add(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  pinned(path: string): boolean {
    if (this.policy.pinned(path)) return true;
    for (const r of this.#runtime) if (isWithin(path, r)) return true;
    return false;
  }

  status(): PinStatus {
    const keys = this.cache.blockStore.pinned;
    return { paths: [...this.#runtime].sort(), pinnedBytes: keys.bytes, limitBytes: this.limitBytes, pinnedFiles: keys.size, overLimit: this.#overLimit.size };
  }

  /** Read every pinned file into the cache (at start), or those at or under `path`. */
  warm(path?: string): Promise<void> {
    const roots = path === undefined ? [...this.policy.pinRoots(), ...this.#runtime] : [path];
    const job = this.#queue.then(async () => {
      for (const root of roots) {
        if (this.#closed) return;
        try {
          // A file already whole is not read again (a write through davgate is heard twice: as
          // the write and as the new version its record got).
          const select = (f: Node) => !this.#closed && this.pinned(f.path) && this.#pin(f) && this.cache.cachedBytes(f) < f.size;
          const done = await warm(this.cache, root, { concurrency: 2, select });
          for (const f of done.failed) this.onError(new Error(f.error), f.path);
        } catch (err) {
          this.onError(err, root);
        }
      }
    });
    this.#queue = job;
    return job;
  }

  /** These paths (and what is under them) changed: pinned files among them are read again. */
  changed(paths: readonly string[]): void {
    const roots = [...this.policy.pinRoots(), ...this.#runtime];
    for (const p of paths) {
      if (this.pinned(p) || roots.some((r) => isWithin(r, p))) void this.warm(p);
    }
  }

  async add(path: string): Promise<void> {
    this.#runtime.add(path);
    await this.#save();
    await this.warm(path);
  }

  /** Unpinned files stay cached, evictable like the rest. */
  async remove(path: string): Promise<void> {
    this.#runtime.delete(path);
    await this.#save();
    let root: Node;
    try {
      root = await this.cache.getnode(path);
    } catch {
      return; // gone: nothing of it to unpin
    }
    for await (const f of filesUnder(this.cache, root)) {
      if (this.pinned(f.path)) continue; // still pinned by a rule or another path
      this.cache.blockStore.pinKey(f.key, false);
      this.#overLimit.delete(f.key);
    }
  }

  #pin(f: Node): boolean {
    const keys = this.cache.blockStore.pinned;
    if (keys.has(f.key)) return true;
    if (keys.bytes + f.size > this.limitBytes) { this.#overLimit.add(f.key); return true; } // cached, not pinned
    this.#overLimit.delete(f.key);
    this.cache.blockStore.pinKey(f.key, true);
    return true;
  }

  async #save(): Promise<void> {
    const tmp = this.#file + '.tmp';
    await writeFile(tmp, JSON.stringify({ paths: [...this.#runtime].sort() }, null, 2) + '\n');
    await rename(tmp, this.#file);
  }
}
