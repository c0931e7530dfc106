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
  readonly #idle: () => boolean;
  readonly #beforeCollect: () => void;
  readonly #gc: (() => void) | undefined;
  #garbage = 0;
  #timer: NodeJS.Timeout | undefined;

  /**
   * `idle`: nothing is being fetched (then the dropped buffers are no longer in use);
   * `beforeCollect`: lets go of buffers kept for reuse, so that the collection frees them too.
   */
  constructor(threshold: number, idle: () => boolean, beforeCollect: () => void = () => {}) {
    this.#threshold = threshold;
    this.#idle = idle;
    this.#beforeCollect = beforeCollect;
    try {
      setFlagsFromString('--expose-gc');
      this.#gc = runInNewContext('gc') as () => void;
    } catch {
      this.#gc = undefined; // a runtime without it just keeps V8's own schedule
    }
  }

  /**
   * `bytes` of buffers are (or are about to become) unreferenced. Once enough died, a collection
   * runs when fetching has been idle for a moment (the last readers finish their writes).
   */
  dropped(bytes: number): void {
    this.#garbage += bytes;
    if (this.#gc && !this.#timer && this.#garbage >= this.#threshold) this.#arm();
  }

  #arm(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#idle()) return this.#arm();
      this.#garbage = 0;
      this.#beforeCollect();
      this.#gc?.();
    }, 50);
    this.#timer.unref();
  }
}
