/**
 * Read buffers of hot streams (multiples of the 512 KiB chunk), reused from one stream to the
 * next. Freshly allocated, they are garbage V8 only collects after ~64 MiB of them (its
 * external-memory limit), so 16 hot streams would grow the process by that much; reused, they
 * cost what is in use plus at most `maxFreeBytes` kept for the next streams.
 */
export class ChunkPool {
  readonly #free = new Map<number, Buffer[]>();
  #freeBytes = 0;

  constructor(readonly chunk: number, readonly maxFreeBytes: number) {}

  take(chunks: number): Buffer {
    const size = chunks * this.chunk;
    const buf = this.#free.get(size)?.pop();
    if (!buf) return Buffer.allocUnsafeSlow(size);
    this.#freeBytes -= size;
    return buf;
  }

  /** Back to the pool: only once nothing (no pending read or socket write) still uses `buf`. */
  give(buf: Buffer): void {
    if (buf.length % this.chunk !== 0 || this.#freeBytes + buf.length > this.maxFreeBytes) return;
    const list = this.#free.get(buf.length) ?? [];
    list.push(buf);
    this.#free.set(buf.length, list);
    this.#freeBytes += buf.length;
  }
}
