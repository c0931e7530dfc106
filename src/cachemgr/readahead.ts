import { LRUCache } from 'lru-cache';

// Sequential-read detection per node, after Mountpoint-s3's prefetcher: the window starts
// at zero, doubles on every sequential step up to a maximum, survives the next request
// continuing where the last one stopped (clients that read in chunks), and resets on a
// random access, so a lone range read fetches only the blocks it covers.

interface StreamState { next: number; window: number }

export class ReadAhead {
  readonly #max: number;
  readonly #states = new LRUCache<string, StreamState>({ max: 4096 });

  constructor(maxBlocks: number) {
    this.#max = maxBlocks;
  }

  /**
   * Called when block `index` of node `key` is about to be read. Returns how many blocks
   * after it are worth fetching now.
   */
  advance(key: string, index: number): number {
    if (this.#max === 0) return 0;
    const s = this.#states.get(key);
    if (s && (index === s.next || index === s.next - 1)) {
      if (index === s.next) s.window = Math.min(this.#max, Math.max(1, s.window * 2));
      s.next = index + 1;
      return s.window;
    }
    this.#states.set(key, { next: index + 1, window: 0 });
    return 0;
  }

  forget(key: string): void {
    this.#states.delete(key);
  }
}
