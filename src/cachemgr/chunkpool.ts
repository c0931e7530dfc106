/**
 * Chunk-sized buffers reused from one stream to the next. Freshly allocated 512 KiB buffers
 * are garbage V8 only collects after ~64 MiB of them (its external-memory limit), so 16 hot
 * streams would grow the process by that much; reused, they cost their number and no more.
 */
export class ChunkPool {
  readonly #free: Buffer[] = [];

  constructor(readonly size: number, readonly maxFree: number) {}

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** Back to the pool: only once nothing (no pending socket write) still reads `buf`. */
  give(buf: Buffer): void {
    if (buf.length === this.size && this.#free.length < this.maxFree) this.#free.push(buf);
  }
}
