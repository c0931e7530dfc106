import type { ReadSink } from '../upstream/types.js';

const EMPTY = Buffer.alloc(0);

interface Waiter { need: number; resolve: (filled: number) => void; reject: (err: unknown) => void }

/**
 * A block being fetched from the upstream, readable while it arrives: a cold read streams the
 * first bytes of a 4 MiB block to the client instead of waiting for the whole block (rclone's
 * downloader does the same with its sparse cache file). Only bytes the upstream read has
 * written (after checking the object's version) are ever handed out.
 */
export class ArrivingBlock implements ReadSink {
  buffer: Buffer;
  /** A read attempt gave up on this buffer while its writes may still land (see ReadSink.abandon). */
  abandoned = false;
  #filled = 0;
  #failed: Error | undefined;
  #waiters: Waiter[] = [];

  /** Resolves when the read ended, either way. */
  readonly settled: Promise<void>;
  #settle!: () => void;

  /** `buffer` may be given later (when the read starts), before it is passed as a sink. */
  constructor(readonly length: number, buffer: Buffer = EMPTY) {
    this.buffer = buffer;
    this.settled = new Promise((r) => { this.#settle = r; });
  }

  progress(filled: number): void {
    if (filled <= this.#filled) return;
    this.#filled = Math.min(filled, this.length);
    this.#wake();
  }

  abandon(): void {
    this.abandoned = true;
  }

  /** The read ended with all `length` bytes in `data` (the sink's buffer, or a backend's own). */
  done(data: Buffer): void {
    this.buffer = data;
    this.#filled = data.length;
    this.#wake();
    this.#settle();
  }

  fail(err: unknown): void {
    this.#failed = err instanceof Error ? err : new Error(String(err));
    this.#wake();
    this.#settle();
  }

  /** Resolves with the bytes available once more than `pos` are (or all there will be). */
  available(pos: number): Promise<number> {
    if (this.#filled > pos) return Promise.resolve(this.#filled);
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    return new Promise((resolve, reject) => this.#waiters.push({ need: pos, resolve, reject }));
  }

  #wake(): void {
    const still: Waiter[] = [];
    for (const w of this.#waiters) {
      if (this.#filled > w.need) w.resolve(this.#filled);
      else if (this.#failed !== undefined) w.reject(this.#failed);
      else still.push(w);
    }
    this.#waiters = still;
  }
}
