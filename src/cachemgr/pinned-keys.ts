// The node keys whose blocks eviction leaves alone (pinned paths, cache policy), and how many
// bytes of block files they hold, kept exact as blocks come and go.

export class PinnedKeys {
  readonly #keys = new Set<string>();
  #bytes = 0;

  get bytes(): number { return this.#bytes; }
  get size(): number { return this.#keys.size; }

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  /** Pin `key`, whose blocks installed now have these sizes. */
  add(key: string, sizes: Iterable<number>): void {
    if (this.#keys.has(key)) return;
    this.#keys.add(key);
    for (const s of sizes) this.#bytes += s;
  }

  delete(key: string, sizes: Iterable<number>): void {
    if (!this.#keys.delete(key)) return;
    for (const s of sizes) this.#bytes -= s;
  }

  /** A block of `key` was installed (+size) or dropped (-size). */
  counted(key: string, delta: number): void {
    if (this.#keys.has(key)) this.#bytes += delta;
  }
}
