import { LRUCache } from 'lru-cache';
import type { Node } from './nodetable.js';

// Directory listings confirmed within the TTL (AFS: a directory's cached contents), so a
// PROPFIND repeated by a client (Finder and Explorer list the same folder again and again)
// costs no upstream round trip. Bounded by the number of entries held, not by directories.

interface Listing { readonly path: string; readonly nodes: readonly Node[] }

export class ListingCache {
  readonly #lru: LRUCache<string, Listing>;
  readonly #maxEntries: number;
  /** Bumped by every forget: a listing that was running meanwhile may miss that change. */
  #epoch = 0;

  readonly #ttlFor: (path: string) => number;

  /** `ttlFor`: how long the listing of a directory is kept (0: not at all). */
  constructor(maxEntries: number, ttlFor: (path: string) => number) {
    this.#maxEntries = maxEntries;
    this.#ttlFor = ttlFor;
    this.#lru = new LRUCache({ maxSize: maxEntries, sizeCalculation: (l) => l.nodes.length + 1 });
  }

  get(key: string): readonly Node[] | undefined {
    return this.#lru.get(key)?.nodes;
  }

  /**
   * Collects a listing while it streams; `commit` keeps it only when it ran to the end, fits
   * the bound, and nothing was invalidated while it ran.
   */
  collector(key: string, path: string): { add(node: Node): void; commit(): void } {
    const epoch = this.#epoch;
    let nodes: Node[] | undefined = [];
    return {
      add: (node) => {
        if (!nodes) return;
        nodes.push(node);
        if (nodes.length >= this.#maxEntries) nodes = undefined;
      },
      commit: () => {
        const ttl = this.#ttlFor(path);
        if (nodes && epoch === this.#epoch && ttl > 0) this.#lru.set(key, { path, nodes }, { ttl });
      },
    };
  }

  forget(key: string): void {
    this.#epoch++;
    this.#lru.delete(key);
  }

  /** Forget the listings of every directory whose path matches. */
  forgetWhere(matches: (path: string) => boolean): void {
    this.#epoch++;
    for (const [key, l] of this.#lru.entries()) if (matches(l.path)) this.#lru.delete(key);
  }
}
