// Concurrent callers asking for the same key share one execution (one upstream fetch).
export class SingleFlight<T> {
  readonly #inflight = new Map<string, Promise<T>>();

  get size(): number { return this.#inflight.size; }

  has(key: string): boolean { return this.#inflight.has(key); }

  /** Run `fn` for `key` unless a run is in flight; `joined` tells the caller which happened. */
  run(key: string, fn: () => Promise<T>): { promise: Promise<T>; joined: boolean } {
    const existing = this.#inflight.get(key);
    if (existing) return { promise: existing, joined: true };
    const promise = (async () => {
      try {
        return await fn();
      } finally {
        this.#inflight.delete(key);
      }
    })();
    this.#inflight.set(key, promise);
    return { promise, joined: false };
  }
}
