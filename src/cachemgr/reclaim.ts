import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Gives the memory of fetched blocks back once a burst of cold reads is over. V8 frees a
 * Buffer's memory only in a full collection, and starts one only after ~64 MiB of them died
 * since the last: without this, each cold read of a big file leaves the process that much
 * larger until some later collection (measured: +70 MB after one 64 MiB cold read). One full
 * collection of our small heap takes a few milliseconds, at most once per `threshold` bytes.
 */
export class MemoryReclaimer {
  readonly #threshold: number;
  readonly #gc: (() => void) | undefined;
  #garbage = 0;
  #scheduled = false;

  constructor(threshold: number) {
    this.#threshold = threshold;
    try {
      setFlagsFromString('--expose-gc');
      this.#gc = runInNewContext('gc') as () => void;
    } catch {
      this.#gc = undefined; // a runtime without it just keeps V8's own schedule
    }
  }

  /** `bytes` of buffers are (or are about to become) unreferenced. */
  dropped(bytes: number): void {
    this.#garbage += bytes;
  }

  /** Nothing is being fetched: collect if enough died, once the current I/O callbacks are done. */
  quiet(): void {
    if (!this.#gc || this.#scheduled || this.#garbage < this.#threshold) return;
    this.#scheduled = true;
    setTimeout(() => {
      this.#scheduled = false;
      this.#garbage = 0;
      this.#gc?.();
    }, 50).unref();
  }
}
