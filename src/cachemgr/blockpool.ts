/**
 * Buffers of fetched blocks, reused from one fetch to the next: one block, or a span of
 * consecutive blocks fetched in one upstream read (its blocks are parts of it). A fresh 4 MiB
 * buffer pays its page faults every time: on the 2-core VM, 256 MiB of fresh buffers took
 * 340–800 ms to fill, the same bytes in a reused buffer 11–21 ms (about half of a cold read).
 *
 * A buffer has holders: the fetch until its blocks are on the cache disk, and each reader while
 * it yields from it (holding a part holds the whole buffer). When the last one lets go, the
 * buffer is reused only after the current turn of the event loop, so code that got it from a
 * promise in this turn can still hold it. A buffer that an abandoned read may still write into
 * is discarded: never reused, left to the collector.
 */
export class BlockBufferPool {
  /** Free buffers by size (a block, a span). */
  readonly #free = new Map<number, Buffer[]>();
  readonly #holders = new Map<Buffer, number>();
  /** The buffer each part (a block of a span) lies in. */
  readonly #whole = new WeakMap<Buffer, Buffer>();

  /** `maxFree`: free buffers kept per size. */
  constructor(readonly size: number, readonly maxFree: number) {}

  /** A buffer of `size` bytes (by default one block), held once by the caller. */
  take(size = this.size): Buffer {
    const buf = this.#free.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
    this.#holders.set(buf, 1);
    return buf;
  }

  /** `buf` cut into consecutive parts of these lengths; holding a part holds `buf`. */
  parts(buf: Buffer, lengths: readonly number[]): Buffer[] {
    let at = 0;
    return lengths.map((n) => {
      const part = buf.subarray(at, (at += n));
      this.#whole.set(part, buf);
      return part;
    });
  }

  /** True for a buffer (or part) of this pool that is not free (buffers of other origins: false). */
  owns(buf: Buffer): boolean {
    return this.#holders.has(this.#of(buf));
  }

  /** One more holder; a no-op for buffers not from this pool. */
  hold(buf: Buffer): void {
    const whole = this.#of(buf);
    const n = this.#holders.get(whole);
    if (n !== undefined) this.#holders.set(whole, n + 1);
  }

  release(buf: Buffer): void {
    const whole = this.#of(buf);
    const n = this.#holders.get(whole);
    if (n === undefined) return;
    this.#holders.set(whole, n - 1);
    if (n === 1) setImmediate(() => this.#recycle(whole));
  }

  /** Never reuse `buf` (a read that timed out may still write into it). */
  discard(buf: Buffer): void {
    this.#holders.delete(this.#of(buf));
  }

  /** Drops the free buffers (their memory goes back once collected). */
  trim(): void {
    this.#free.clear();
  }

  get freeCount(): number {
    let n = 0;
    for (const list of this.#free.values()) n += list.length;
    return n;
  }

  #of(buf: Buffer): Buffer {
    return this.#whole.get(buf) ?? buf;
  }

  #recycle(buf: Buffer): void {
    if (this.#holders.get(buf) !== 0) return; // held again meanwhile, or discarded
    this.#holders.delete(buf);
    const list = this.#free.get(buf.length) ?? [];
    if (list.length < this.maxFree) list.push(buf);
    this.#free.set(buf.length, list);
  }
}
