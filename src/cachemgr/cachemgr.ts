import type { Readable } from 'node:stream';
import type { Quota, Upstream } from '../upstream/types.js';
import type { Metrics } from '../metrics.js';
import { BlockStore } from './blockstore.js';
import { NodeTable, type Node } from './nodetable.js';
import { SHARED, type Identity } from './identity.js';
import { DiskHealth } from './diskhealth.js';
import { NodeRecords } from './nodes.js';
import { BlockFetcher } from './fetcher.js';
import { RangeReader, type BlockSink } from './range-reader.js';
import { WriteThrough } from './writer.js';
import { cachedBytes, invalidate, purge, residency } from './maintenance.js';
import type { InvalidationBus } from './bus.js';
import { parentOf } from '../davpath.js';
import { splicedBody, splicedSize } from './splice.js';
import { CachePolicy, type CacheRule } from './policy.js';
import { Pins } from './pins.js';

export type { Node } from './nodetable.js';
export type { BlockSink } from './range-reader.js';
export { SHARED, type Identity } from './identity.js';
export type { InvalidationBus, BusHandlers } from './bus.js';

// The cache manager (docs/architecture.md, Contracts): getnode/getdata over a node table and a
// block store, write-through writes, and namespace operations that keep the cache coherent.
// This is the one entry point; the work is done by node records (nodes.ts), the block fetcher
// (fetcher.ts), the range reader (range-reader.ts), write-through (writer.ts) and
// maintenance.ts. Invariants:
// - a block is named by (node key, node version, index); the version is a digest of the
//   upstream validator, so bytes of one object version are never served for another;
// - upstream reads carry the expected validator; a mismatch is a PreconditionFailedError
//   and the node is revalidated, never half-served from two versions;
// - at most `maxInflightFetches` upstream block reads run at once (demand + read-ahead).

export interface CacheOptions {
  dir: string;
  blockSize: number;
  maxBytes: number;
  highWatermark: number;
  lowWatermark: number;
  ttl: number;
  nodeTable: 'memory' | 'sqlite';
  readAheadMaxBlocks: number;
  maxInflightFetches: number;
  /** Memory tier for small blocks: total bytes, and the largest block kept there. */
  memoryBytes: number;
  memoryMaxBlockBytes: number;
  /** Entries of directory listings kept for the TTL (0: every listing goes upstream). */
  listingEntries: number;
  /** Node records held in memory (default 100k). */
  nodeEntries?: number;
  /** How long a failing cache disk is bypassed before the next try (default 30 s). */
  diskRetryAfter?: number;
  /** Cache policy per path (policy.ts); the first rule that matches decides. */
  rules?: readonly CacheRule[];
  /** Bytes of block files pinned files may hold (default: half of maxBytes). */
  pinnedMaxBytes?: number;
}

export interface CacheEvents {
  /** The cache disk failed writes repeatedly and is bypassed (true), or works again (false). */
  onDiskBypass?(bypassed: boolean, err?: unknown): void;
}

export class CacheManager {
  readonly upstream: Upstream;
  readonly blockSize: number;
  readonly #blocks: BlockStore;
  readonly #table: NodeTable;
  readonly #nodes: NodeRecords;
  readonly #fetcher: BlockFetcher;
  readonly #reader: RangeReader;
  readonly #writer: WriteThrough;
  readonly #bus: InvalidationBus | undefined;
  /** Pinned paths: never evicted, warmed at start (by the gateway) and after each change. */
  readonly pins: Pins;

  private constructor(upstream: Upstream, opts: CacheOptions, blocks: BlockStore, table: NodeTable, metrics?: Metrics, events?: CacheEvents, bus?: InvalidationBus) {
    this.upstream = upstream;
    this.blockSize = opts.blockSize;
    this.#blocks = blocks;
    this.#table = table;
    // Failing cache disk (full, EIO, read-only): installs are skipped for a while, reads go upstream.
    const diskHealth = new DiskHealth(3, opts.diskRetryAfter ?? 30_000, (bypassed, err) => {
      metrics?.cacheDiskBypassed.set(bypassed ? 1 : 0);
      if (bypassed) metrics?.cacheDiskBypasses.inc();
      events?.onDiskBypass?.(bypassed, err);
    });
    const policy = new CachePolicy(opts.rules ?? [], opts.ttl);
    const cacheable = (path: string, size: number) => policy.cacheable(path, size);
    const fetcher = new BlockFetcher(upstream, blocks, { ...opts, cacheable }, diskHealth, (key) => table.forget(key), metrics);
    this.#fetcher = fetcher;
    this.pins = new Pins(this, policy, opts.dir, opts.pinnedMaxBytes ?? Math.floor(opts.maxBytes / 2));
    const ttlFor = (path: string) => policy.ttlFor(path);
    this.#nodes = new NodeRecords(upstream, table, { ...opts, ttlFor, maxTtl: policy.maxTtl }, (key, keep, path) => {
      // A new version of a pinned file, found on revalidation: read it in again.
      if (path !== undefined) this.pins.changed([path]);
      return fetcher.dropBlocks(key, keep);
    }, metrics);
    this.#reader = new RangeReader(fetcher, metrics);
    this.#bus = bus;
    this.#writer = new WriteThrough(this.#nodes, blocks, metrics, (paths) => this.announce(paths));
    bus?.subscribe({
      changed: (paths) => this.#changedElsewhere(paths).catch(() => {}),
      missed: () => void invalidate(this.#nodes, fetcher, '/').catch(() => {}),
    });
  }

  /**
   * `bus`: the cache is one of several in front of the upstream; changes made through this
   * one are announced on it, and those announced by the others are dropped from this one.
   */
  static async open(upstream: Upstream, opts: CacheOptions, metrics?: Metrics, events?: CacheEvents, bus?: InvalidationBus): Promise<CacheManager> {
    const blocks = new BlockStore(opts.dir, {
      maxBytes: opts.maxBytes, highWatermark: opts.highWatermark, lowWatermark: opts.lowWatermark,
      events: {
        onEvict: (bytes, blocks, recent) => {
          metrics?.evictedBytes.inc(bytes);
          metrics?.evictedBlocks.inc(blocks);
          metrics?.evictedRecent.inc(recent);
        },
        onCorrupt: () => metrics?.corruptBlocks.inc(),
        onChange: (bytes, count) => { metrics?.cacheBytes.set(bytes); metrics?.cacheBlockCount.set(count); },
      },
    });
    await blocks.open();
    try {
      const table = await NodeTable.open(opts.nodeTable, opts.dir, opts.nodeEntries);
      const cache = new CacheManager(upstream, opts, blocks, table, metrics, events, bus);
      await cache.pins.load();
      return cache;
    } catch (err) {
      await blocks.close();
      throw err;
    }
  }

  get cacheBytes(): number { return this.#blocks.bytes; }
  get nodeCount(): number { return this.#table.size; }
  get memoryTierBytes(): number { return this.#fetcher.memoryTierBytes; }
  /** The block store itself, for `cache stats|verify|purge` (maintenance.ts). */
  get blockStore(): BlockStore { return this.#blocks; }

  /** The node for a path, fresh within the TTL, else revalidated upstream (nodes.ts). */
  getnode(path: string, identity: Identity = SHARED): Promise<Node> {
    return this.#nodes.getnode(path, identity);
  }

  /** Children of a directory (its node, or its path) as nodes, streamed. */
  list(dir: Node | string, identity: Identity = SHARED): AsyncGenerator<Node> {
    return this.#nodes.list(dir, identity);
  }

  /** getdata: one verified block of a node, from the cache or fetched once for all askers. */
  getdata(node: Node, index: number, identity: Identity = SHARED): Promise<Buffer> {
    return this.#fetcher.getdata(node, index, identity);
  }

  /**
   * Write bytes start..end (inclusive) of a node into `sink` (the hot read path): a chunk
   * given to the sink is not reused before the promise of its write resolves.
   */
  /** getnode's answer when the record is fresh, without a promise; undefined when getnode must run. */
  peekNode(path: string, identity: Identity = SHARED): Node | undefined {
    return this.#nodes.peekFresh(path, identity);
  }

  /**
   * Bytes start..end (inclusive) when they lie in one block held in the memory tier, else
   * undefined (then readRangeInto). The buffer is immutable: it may be written out as is.
   */
  rangeInMemory(node: Node, start: number, end: number): Buffer | undefined {
    const index = Math.floor(start / this.blockSize);
    if (end < start || Math.floor(end / this.blockSize) !== index) return undefined;
    const buf = this.#fetcher.inMemory(node, index);
    const from = start - index * this.blockSize;
    return buf && (from === 0 && end - start + 1 === buf.length ? buf : buf?.subarray(from, end - index * this.blockSize + 1));
  }

  readRangeInto(node: Node, start: number, end: number, identity: Identity, sink: BlockSink): Promise<void> {
    return this.#reader.readInto(node, start, end, identity, sink);
  }

  /**
   * The same bytes pulled: a yielded buffer is valid only until the consumer asks for the next
   * one, and all of them until it ends the iteration.
   */
  readRange(node: Node, start: number, end: number, identity: Identity = SHARED): AsyncGenerator<Buffer> {
    return this.#reader.pieces(node, start, end, identity);
  }

  /** Which blocks of start..end are cached now (hit, partial, miss), for the request log. */
  residency(node: Node, start: number, end: number): 'hit' | 'partial' | 'miss' {
    return residency(this.#fetcher, node, start, end);
  }

  /** Bytes of file `node` this gateway holds now (memory, being installed, or on disk). */
  cachedBytes(node: Node): number {
    return cachedBytes(this.#fetcher, node);
  }

  async write(path: string, body: Readable, size: number | undefined, identity: Identity = SHARED): Promise<Node> {
    const node = await this.#writer.write(path, body, size, identity);
    this.pins.changed([path]);
    return node;
  }

  /** Are the blocks of this file pinned? */
  isPinned(node: Node): boolean {
    return this.#blocks.pinned.has(node.key);
  }

  /**
   * Writes `length` bytes of `patch` at `start` of file `node` (at most its size: no holes):
   * the old bytes around them come from the cache, and the whole new file is written through.
   */
  patch(node: Node, start: number, length: number, patch: Readable, identity: Identity = SHARED): Promise<Node> {
    const body = splicedBody((a, b) => this.readRange(node, a, b, identity), node.size, start, length, patch);
    // A failed patch body (client gone) fails the write; a failed old read does too.
    patch.once('error', (err) => body.destroy(err));
    return this.write(node.path, body, splicedSize(node.size, start, length), identity);
  }

  mkdir(path: string, identity: Identity = SHARED): Promise<void> {
    return this.#writer.mkdir(path, identity);
  }

  remove(path: string, identity: Identity = SHARED): Promise<void> {
    return this.#writer.remove(path, identity);
  }

  async move(from: string, to: string, overwrite: boolean, identity: Identity = SHARED): Promise<void> {
    await this.#writer.move(from, to, overwrite, identity);
    this.pins.changed([to]);
  }

  async copy(from: string, to: string, overwrite: boolean, shallow: boolean, identity: Identity = SHARED): Promise<void> {
    await this.#writer.copy(from, to, overwrite, shallow, identity);
    this.pins.changed([to]);
  }

  quota(path: string, identity: Identity = SHARED): Promise<Quota | undefined> {
    return this.#writer.quota(path, identity);
  }

  setMtime(path: string, mtimeMs: number, identity: Identity = SHARED): Promise<void> {
    return this.#writer.setMtime(path, mtimeMs, identity);
  }

  /** Admin invalidation: the next access to anything under `prefix` goes upstream, on every gateway. */
  async invalidate(prefix: string): Promise<number> {
    const n = await invalidate(this.#nodes, this.#fetcher, prefix);
    await this.announce([prefix]);
    this.pins.changed([prefix]);
    return n;
  }

  /** Tell the other gateways (if any) that `paths` and everything under them changed. */
  async announce(paths: readonly string[]): Promise<void> {
    await this.#bus?.publish(paths);
  }

  /**
   * Another gateway changed `paths`: their records, absent names and listings are forgotten
   * here, and the records of their parents (a member changes a directory's mtime).
   */
  async #changedElsewhere(paths: readonly string[]): Promise<void> {
    for (const p of paths) {
      await invalidate(this.#nodes, this.#fetcher, p);
      if (p !== '/') this.#nodes.forgetRecordsAt(parentOf(p));
    }
    this.pins.changed(paths);
  }

  /** Drop the blocks and records of `path` and everything under it; the nodes dropped. */
  purge(path: string, identity: Identity = SHARED): Promise<number> {
    return purge(this.#nodes, this.#fetcher, path, identity);
  }

  /** Resolves once every block being fetched has arrived and been written to the cache disk (or failed to). */
  flush(): Promise<void> {
    return this.#fetcher.flush();
  }

  async close(): Promise<void> {
    this.pins.close();
    await this.flush();
    await this.#table.close();
    await this.#blocks.close();
    await this.upstream.close?.();
  }
}
