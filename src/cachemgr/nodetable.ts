import { hash } from 'node:crypto';
import { join } from 'node:path';
import type Keyv from 'keyv';
import { openKeyv } from './kvstore.js';
import { LRUCache } from 'lru-cache';
import type { Entry } from '../upstream/types.js';
import { isWithin } from '../davpath.js';

// The node table: what the cache knows about each path (AFS: the vcache).
// A bounded in-memory front holds the records checked during this run; only those can
// be "fresh" (within the TTL). Records persisted in keyv (sqlite) survive a restart,
// but are always revalidated before use: a record's blocks are keyed by its version, so
// an unchanged upstream object keeps its cached blocks across restarts.

/**
 * An upstream entry as the cache knows it. The name is left out: it is the last segment of
 * `path`, and records are many (listings remember every child).
 */
export interface Node extends Omit<Entry, 'name'> {
  /** Hex digest of (upstream id, identity, path): names the node's block directory. */
  readonly key: string;
  /** Hex digest of the validator: names the node's blocks, so a changed object never matches old blocks. */
  readonly version: string;
  /** When this record was last confirmed upstream (ms since epoch). */
  readonly checkedAt: number;
  /** Served from the cache because the upstream could not be reached to revalidate it. */
  readonly stale?: boolean;
}

export function nodeKey(upstreamId: string, identity: string, path: string): string {
  // One-shot hash: a listing makes two per entry, and a Hash object costs more than the digest.
  return hash('sha256', `${upstreamId}\0${identity}\0${path}`, 'hex').slice(0, 40);
}

export function versionOf(validator: string): string {
  return hash('sha256', validator, 'hex').slice(0, 16);
}

export class NodeTable {
  readonly #front: LRUCache<string, Node>;
  readonly #store: Keyv<Node>;

  private constructor(store: Keyv<Node>, maxEntries: number) {
    this.#store = store;
    this.#front = new LRUCache({ max: maxEntries });
  }

  static async open(kind: 'memory' | 'sqlite', cacheDir: string, maxEntries = 100_000): Promise<NodeTable> {
    const store = await openKeyv<Node>(kind, join(cacheDir, 'nodes.sqlite'), 'nodes', 'node');
    store.on('error', () => {}); // a failing index must not take the gateway down: it is a cache
    return new NodeTable(store, maxEntries);
  }

  /** Records held in memory. */
  get size(): number { return this.#front.size; }

  /** The record held in memory for this run, if any. */
  peek(key: string): Node | undefined {
    return this.#front.get(key);
  }

  /** The persisted record (from a previous run, or evicted from the front). */
  async load(key: string): Promise<Node | undefined> {
    return this.#front.get(key) ?? (await this.#store.get(key).catch(() => undefined)) ?? undefined;
  }

  async put(node: Node): Promise<void> {
    this.#front.set(node.key, node);
    await this.#store.set(node.key, node).catch(() => {});
  }

  /** Keep a record for this run only (listings: too many to persist one by one). */
  remember(node: Node): void {
    this.#front.set(node.key, node);
  }

  /** Drop the in-memory record: the next getnode revalidates. */
  forget(key: string): void {
    this.#front.delete(key);
  }

  /** In-memory records at or under `prefix`, snapshotted so callers may modify the table. */
  under(prefix: string): Node[] {
    const out: Node[] = [];
    for (const node of this.#front.values()) if (isWithin(node.path, prefix)) out.push(node);
    return out;
  }

  async delete(key: string): Promise<void> {
    this.#front.delete(key);
    await this.#store.delete(key).catch(() => {});
  }

  /** Forget the in-memory freshness of every record at or under `prefix`. */
  async invalidate(prefix: string): Promise<string[]> {
    const keys = this.under(prefix).map((n) => n.key);
    for (const k of keys) this.#front.delete(k);
    return keys;
  }

  async close(): Promise<void> {
    await this.#store.disconnect().catch(() => {});
  }
}
