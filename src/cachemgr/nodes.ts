import { LRUCache } from 'lru-cache';
import type { Entry, Upstream } from '../upstream/types.js';
import { NotFoundError, isTransient } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { isAscii, isWithin, parentOf } from '../davpath.js';
import { nodeKey, versionOf, type Node, type NodeTable } from './nodetable.js';
import { SingleFlight } from './singleflight.js';
import type { Identity } from './identity.js';
import { ListingCache } from './listings.js';
import { metered, upstreamResultOf } from './metered.js';

// Node records: what the cache knows about each path, fresh for one TTL, then revalidated
// upstream. A node's version is a digest of the upstream validator; when it changes, the
// blocks of the old version are dropped (they are keyed by version, so they could never be
// served for the new one anyway). Also here: the names known to be absent, and the listings
// of directories, both for one TTL.

export interface NodeOptions {
  ttl: number;
  /** The TTL of one path, when rules set it per path (cache policy); else `ttl` everywhere. */
  ttlFor?: (path: string) => number;
  /** The longest of those TTLs. */
  maxTtl?: number;
  /** Entries of listings kept for the TTL (0: every listing goes upstream). */
  listingEntries: number;
}

/**
 * Called when the blocks of node `key` are obsolete: all of them, or all but those of
 * `keepVersion` (a new version of the file at `path` was seen). The block side (read-ahead
 * state, block store, pins) is not ours to touch.
 */
export type ObsoleteBlocks = (key: string, keepVersion?: string, path?: string) => Promise<void>;

export class NodeRecords {
  readonly upstream: Upstream;
  readonly table: NodeTable;
  readonly #ttlFor: (path: string) => number;
  readonly #metrics: Metrics | undefined;
  readonly #obsolete: ObsoleteBlocks;
  readonly #statFlight = new SingleFlight<Node>();
  /** Paths known to be absent, by node key, for one TTL (none when the TTL is 0). */
  readonly #missing: LRUCache<string, string> | undefined;
  readonly #listings: ListingCache | undefined;
  readonly #keys = new LRUCache<string, string>({ max: 4096 });

  constructor(upstream: Upstream, table: NodeTable, opts: NodeOptions, obsolete: ObsoleteBlocks, metrics?: Metrics) {
    this.upstream = upstream;
    this.table = table;
    const ttl = opts.ttl;
    this.#ttlFor = opts.ttlFor ?? (() => ttl);
    this.#obsolete = obsolete;
    this.#metrics = metrics;
    const maxTtl = Math.max(opts.maxTtl ?? 0, ttl);
    this.#missing = maxTtl > 0 ? new LRUCache({ max: 10_000, ttl: maxTtl }) : undefined;
    this.#listings = maxTtl > 0 && opts.listingEntries > 0 ? new ListingCache(opts.listingEntries, this.#ttlFor) : undefined;
  }

  keyOf(path: string, identity: Identity): string {
    // The digest is the costliest step of a hot lookup: remembered for the paths asked most.
    const memo = identity.key + '\0' + path;
    let key = this.#keys.get(memo);
    if (key === undefined) this.#keys.set(memo, key = nodeKey(this.upstream.id, identity.key, path));
    return key;
  }

  /**
   * getnode: the node for a path, fresh within the TTL, else revalidated upstream. A name
   * missing in one Unicode normal form is looked up in the other (macOS sends NFD, most
   * clients NFC), so a file is found whichever form created it; node.path is the real name.
   */
  async getnode(path: string, identity: Identity): Promise<Node> {
    try {
      return await this.#getnodeExact(path, identity);
    } catch (err) {
      if (!(err instanceof NotFoundError) || isAscii(path)) throw err;
      for (const alt of new Set([path.normalize('NFC'), path.normalize('NFD')])) {
        if (alt === path) continue;
        try {
          return await this.#getnodeExact(alt, identity);
        } catch (e) {
          if (!(e instanceof NotFoundError)) throw e;
        }
      }
      throw err;
    }
  }

  /** The record of `path` (this exact spelling) when it is fresh within the TTL: no await, no upstream. */
  peekFresh(path: string, identity: Identity): Node | undefined {
    const cached = this.table.peek(this.keyOf(path, identity));
    return cached && Date.now() - cached.checkedAt < this.#ttlFor(path) ? cached : undefined;
  }

  async #getnodeExact(path: string, identity: Identity): Promise<Node> {
    const key = this.keyOf(path, identity);
    const cached = this.table.peek(key);
    if (cached && Date.now() - cached.checkedAt < this.#ttlFor(path)) return cached;
    // Absent within the TTL too: clients probe the same missing names over and over
    // (Finder: ._*, .DS_Store, .Spotlight-V100, ...); they cost no upstream round trip.
    if (this.#missing?.has(key)) throw new NotFoundError(path);
    return this.#statFlight.run(key, async () => {
      let entry: Entry;
      try {
        entry = await metered(this.#metrics, 'stat', () => this.upstream.stat(path, identity));
      } catch (err) {
        const known = await this.#statFailed(err, key, path, identity, cached);
        if (known) return known;
        throw err;
      }
      return this.install(entry, identity);
    }).promise;
  }

  /** After a failed stat: what is still worth serving (a stale record), if anything. */
  async #statFailed(err: unknown, key: string, path: string, identity: Identity, cached: Node | undefined): Promise<Node | undefined> {
    if (err instanceof NotFoundError) {
      this.#metrics?.revalidations.inc({ result: 'gone' });
      const ttl = this.#ttlFor(path);
      if (ttl > 0) this.#missing?.set(key, path, { ttl });
      this.forgetParentListing(path, identity);
      await this.table.delete(key);
      void this.#obsolete(key);
    } else if (isTransient(err)) {
      // An unreachable upstream is not a deletion (Arla's disconnected operation): what
      // we knew is served, marked stale, until the upstream answers again.
      const known = cached ?? await this.table.load(key);
      if (known) {
        this.#metrics?.staleServed.inc();
        return { ...known, stale: true };
      }
    }
    return undefined;
  }

  /** Record a freshly seen entry (and persist it); a changed version drops the old blocks. */
  async install(entry: Entry, identity: Identity): Promise<Node> {
    const key = this.keyOf(entry.path, identity);
    const prev = this.table.peek(key) ?? await this.table.load(key);
    const node = this.#seen(entry, key, prev);
    // The parent's listing shows the old size and ETag (or lacks the entry): list it again.
    if (prev?.version !== node.version) this.forgetParentListing(entry.path, identity);
    await this.table.put(node);
    return node;
  }

  /** The same for a listing entry, kept for this run only and synchronous: listings are long. */
  #remember(entry: Entry, identity: Identity): Node {
    // Not through the memo of keyOf: a listing would push the paths asked for out of it.
    const key = nodeKey(this.upstream.id, identity.key, entry.path);
    const node = this.#seen(entry, key, this.table.peek(key));
    this.table.remember(node);
    return node;
  }

  #seen(entry: Entry, key: string, prev: Node | undefined): Node {
    this.#missing?.delete(key);
    const node: Node = {
      key, path: entry.path, kind: entry.kind, size: entry.size, mtimeMs: entry.mtimeMs, birthtimeMs: entry.birthtimeMs,
      validator: entry.validator,
      // Unchanged validator, same version: no need to hash it again (listings repeat a lot).
      version: prev && prev.validator === entry.validator ? prev.version : versionOf(entry.validator),
      checkedAt: Date.now(),
    };
    if (prev && prev.version !== node.version) {
      this.#metrics?.revalidations.inc({ result: 'changed' });
      void this.#obsolete(key, node.version, node.path);
    } else if (prev) {
      this.#metrics?.revalidations.inc({ result: 'same' });
    }
    return node;
  }

  /**
   * Children of a directory as nodes, streamed; each is remembered so a following GET skips a
   * stat. Within the TTL a listing is answered from memory. Given the directory's node (its
   * caller has it already), its key is not computed again.
   */
  async *list(dir: Node | string, identity: Identity): AsyncGenerator<Node> {
    const path = typeof dir === 'string' ? dir : dir.path;
    const key = typeof dir === 'string' ? this.keyOf(dir, identity) : dir.key;
    const cached = this.#listings?.get(key);
    if (cached) {
      yield* cached;
      return;
    }
    const collect = this.#listings?.collector(key, path);
    const start = performance.now();
    let result = 'error';
    try {
      for await (const entry of this.upstream.list(path, identity)) {
        const node = this.#remember(entry, identity);
        collect?.add(node);
        yield node;
      }
      result = 'ok';
      collect?.commit();
    } catch (err) {
      result = upstreamResultOf(err);
      throw err;
    } finally {
      this.#metrics?.upstreamCall('list', result, (performance.now() - start) / 1000);
    }
  }

  /** Forget the record, and the listing, of `path`: the next getnode revalidates. */
  forgetPath(path: string, identity: Identity): void {
    const key = this.keyOf(path, identity);
    this.table.forget(key);
    this.#missing?.delete(key);
    this.#listings?.forget(key);
  }

  /** The listing of `path`'s directory shows `path` as it was: list it again next time. */
  forgetParentListing(path: string, identity: Identity): void {
    if (path !== '/') this.#listings?.forget(this.keyOf(parentOf(path), identity));
  }

  /** Forget the listings of `prefix` and of every directory under it. */
  forgetListingsUnder(prefix: string): void {
    this.#listings?.forgetWhere((p) => isWithin(p, prefix));
  }

  /** Forget that anything at or under `prefix` was absent (a tree appeared there). */
  forgetMissingUnder(prefix: string): void {
    this.#forgetMissingWhere((p) => isWithin(p, prefix));
  }

  #forgetMissingWhere(matches: (path: string) => boolean): void {
    if (!this.#missing) return;
    for (const [key, path] of this.#missing.entries()) if (matches(path)) this.#missing.delete(key);
  }

  /** Drop a node's record and all its blocks (it was removed, or replaced by another tree). */
  async drop(key: string): Promise<void> {
    this.table.forget(key);
    await this.#obsolete(key);
    await this.table.delete(key);
  }

  /** Forget the records of exactly `path`, for every identity (another gateway changed a member). */
  forgetRecordsAt(path: string): void {
    for (const node of this.table.under(path)) if (node.path === path) this.table.forget(node.key);
  }

  /**
   * The next access to anything under `prefix` goes upstream: records, absent names and
   * listings there are forgotten, and so are the listings and absent names of every directory
   * above it (a change announced by the store may have created whole directory levels: the
   * key `new/dir/file` makes `/new` exist). Returns the forgotten keys.
   */
  async invalidate(prefix: string): Promise<string[]> {
    const keys = await this.table.invalidate(prefix);
    const related = (p: string) => isWithin(p, prefix) || isWithin(prefix, p);
    this.#forgetMissingWhere(related);
    this.#listings?.forgetWhere(related);
    return keys;
  }
}
