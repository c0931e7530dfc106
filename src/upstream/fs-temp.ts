import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';

// Temporary files of the fs upstream's uploads and copies, and the sweep of those a crash left.

export const TMP_PREFIX = '.davgate-tmp-';
/** Partial writes are never listed nor addressable. */
export const isTemp = (name: string): boolean => name.startsWith(TMP_PREFIX);
/**
 * Uploads are written here (at the root, hidden like every TMP_PREFIX name) and renamed into
 * place: one directory to sweep for what a crash left behind, instead of a walk of the tree.
 * A target on another file system (a mount inside the root) gets its temporary file beside it.
 */
const TMP_DIR = TMP_PREFIX + 'uploads';

export class Temporaries {
  readonly #dir: string;
  readonly #rootDev: number;
  #ready: Promise<unknown> | undefined;
  /** Temporary files this process is writing now: never swept. */
  readonly #writing = new Set<string>();
  #sweeper: NodeJS.Timeout | undefined;

  /** For the real root `root`, on device `rootDev`. */
  constructor(root: string, rootDev: number) {
    this.#dir = join(root, TMP_DIR);
    this.#rootDev = rootDev;
  }

  /** A new temporary file name for `host`, on the same file system as its directory (`dirDev`). */
  async create(host: string, dirDev: number): Promise<string> {
    if (dirDev !== this.#rootDev) return join(dirname(host), TMP_PREFIX + randomBytes(8).toString('hex'));
    this.#ready ??= fsp.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await this.#ready;
    const tmp = join(this.#dir, randomBytes(12).toString('hex'));
    this.#writing.add(tmp);
    return tmp;
  }

  /** `tmp` was renamed into place. */
  committed(tmp: string): void {
    this.#writing.delete(tmp);
  }

  /** `tmp` is given up: removed, whatever state it is in. */
  async discard(tmp: string): Promise<void> {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    this.#writing.delete(tmp);
  }

  /** Remove temporary upload files idle for longer than `maxAgeMs`; returns how many. */
  async sweep(maxAgeMs: number): Promise<number> {
    const names = await fsp.readdir(this.#dir).catch(() => [] as string[]);
    let removed = 0;
    for (const n of names) {
      const p = join(this.#dir, n);
      if (this.#writing.has(p)) continue;
      const st = await fsp.lstat(p).catch(() => null);
      if (!st || Date.now() - st.mtimeMs < maxAgeMs) continue;
      await fsp.rm(p, { recursive: true, force: true }).catch(() => undefined);
      removed++;
    }
    return removed;
  }

  /** Sweep now, then every quarter of `maxAgeMs` (at least every second) until `stop`. */
  async sweepEvery(maxAgeMs: number): Promise<void> {
    await this.sweep(maxAgeMs);
    this.#sweeper = setInterval(() => void this.sweep(maxAgeMs).catch(() => {}), Math.max(1000, maxAgeMs / 4));
    this.#sweeper.unref();
  }

  stop(): void {
    clearInterval(this.#sweeper);
  }
}
