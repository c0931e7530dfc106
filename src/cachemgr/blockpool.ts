/**
 * Buffers of fetched blocks (one block size), reused from one fetch to the next. A fresh 4 MiB
 * buffer pays its page faults every time: on the 2-core VM, 256 MiB of fresh buffers took
 * 340–800 ms to fill, the same bytes in a reused buffer 11–21 ms (about half of a cold read).
 *
 * A buffer has holders: the fetch until its block is on the cache disk, and each reader while
 * it yields from it. When the last one lets go, the buffer is reused only after the current turn
 * of the event loop, so code that got it from a promise in this turn can still hold it. A buffer
 * that an abandoned read may still write into is discarded: never reused, left to the collector.
 */
export class BlockBufferPool {
  readonly #free: Buffer[] = [];
  readonly #holders = new Map<Buffer, number>();

  constructor(readonly size: number, readonly maxFree: number) {}

  /** A buffer of `size` bytes, held once by the caller. */
  take(): Buffer {
    const buf = this.#free.pop() ?? Buffer.allocUnsafeSlow(this.size);
    this.#holders.set(buf, 1);
    return buf;
  }

  /** True for a buffer of this pool that is not free (buffers of other origins: false). */
  owns(buf: Buffer): boolean {
    return this.#holders.has(buf);
  }

  /** One more holder; a no-op for buffers not from this pool. */
  hold(buf: Buffer): void {
    const n = this.#holders.get(buf);
    if (n !== undefined) this.#holders.set(buf, n + 1);
  }

  release(buf: Buffer): void {
    const n = this.#holders.get(buf);
    if (n === undefined) return;
    this.#holders.set(buf, n - 1);
    if (n === 1) setImmediate(() => this.#recycle(buf));
  }

  /** Never reuse `buf` (a read that timed out may still write into it). */
  discard(buf: Buffer): void {
    this.#holders.delete(buf);
  }

  /** Drops the free buffers (their memory goes back once collected). */
  trim(): void {
    this.#free.length = 0;
  }

  get freeCount(): number { return this.#free.length; }

  #recycle(buf: Buffer): void {
    if (this.#holders.get(buf) !== 0) return; // held again meanwhile, or discarded
    this.#holders.delete(buf);
    if (this.#free.length < this.maxFree) this.#free.push(buf);
  }
}
