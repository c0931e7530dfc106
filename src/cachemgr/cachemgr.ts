import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { LRUCache } from 'lru-cache';
import type { Entry, Quota, Upstream } from '../upstream/types.js';
import { PreconditionFailedError, DavgateError, NotFoundError, isTransient } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { isAscii, isWithin, parentOf } from '../davpath.js';
import { BlockStore, CHUNK, blockId } from './blockstore.js';
import { NodeTable, nodeKey, versionOf, type Node } from './nodetable.js';
import { SingleFlight } from './singleflight.js';
import { SHARED, type Identity } from './identity.js';
import { ReadAhead } from './readahead.js';
import { ListingCache } from './listings.js';
import { ArrivingBlock } from './arriving.js';
import { BlockBufferPool } from './blockpool.js';
import { ChunkPool } from './chunkpool.js';
import { MemoryReclaimer } from './reclaim.js';
import { DiskHealth } from './diskhealth.js';

export type { Node } from './nodetable.js';
export { SHARED, type Identity } from './identity.js';

// The cache manager (docs/architecture.md, Contracts): getnode/getdata over a node table and a block
// store, write-through writes, and namespace operations that keep the cache coherent.
// Invariants:
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
  /** How long a failing cache disk is bypassed before the next try (default 30 s). */
  diskRetryAfter?: number;
}

/** How an upstream call ended, for metrics: a client that went away is not an upstream failure. */
function upstreamResultOf(err: unknown): string {
  if (err instanceof NotFoundError) return 'not_found';
  if (err instanceof DavgateError && err.code === 'DAVGATE_INCOMPLETE_BODY') return 'client_abort';
  return 'error';
}

export interface CacheEvents {
  /** The cache disk failed writes repeatedly and is bypassed (true), or works again (false). */
  onDiskBypass?(bypassed: boolean, err?: unknown): void;
}

export class CacheManager {
  readonly upstream: Upstream;
  readonly blockSize: number;
  readonly #opts: CacheOptions;
  readonly #metrics: Metrics | undefined;
  readonly #blocks: BlockStore;
  readonly #table: NodeTable;
  readonly #blockFlight = new SingleFlight<Buffer>();
  readonly #statFlight = new SingleFlight<Node>();
  readonly #readAhead: ReadAhead;
  readonly #fetchLimit: ReturnType<typeof pLimit>;
  /** Blocks fetched and being written to the cache disk, by block id (bounded by the fetch limit). */
  readonly #installing = new Map<string, Buffer>();
  readonly #installs = new Set<Promise<void>>();
  /** Blocks being fetched, readable as their bytes arrive (by block id, while the fetch runs). */
  readonly #arriving = new Map<string, ArrivingBlock>();
  /** Read buffers of hot streams (two per stream), kept for the next streams. */
  readonly #chunks = new ChunkPool(CHUNK, 24 * 1024 * 1024);
  /** Buffers of whole fetched blocks, reused by the next fetches (see blockpool.ts). */
  readonly #fetchBuffers: BlockBufferPool;
  /** Hot streams reading block files now: few get bigger reads, many share a bounded memory. */
  #streams = 0;
  readonly #reclaimer: MemoryReclaimer;
  /** Verified small blocks in memory, by block id; bounded by bytes. */
  readonly #memory: LRUCache<string, Buffer> | undefined;
  /** Paths known to be absent, by node key, for one TTL (none when the TTL is 0). */
  readonly #missing: LRUCache<string, string> | undefined;
  readonly #listings: ListingCache | undefined;
  /** Failing cache disk (full, EIO, read-only): installs are skipped for a while, reads go upstream. */
  readonly #diskHealth: DiskHealth;

  private constructor(upstream: Upstream, opts: CacheOptions, blocks: BlockStore, table: NodeTable, metrics?: Metrics, events?: CacheEvents) {
    this.upstream = upstream;
    this.#opts = opts;
    this.blockSize = opts.blockSize;
    this.#blocks = blocks;
    this.#table = table;
    this.#metrics = metrics;
    this.#readAhead = new ReadAhead(opts.readAheadMaxBlocks);
    this.#fetchBuffers = new BlockBufferPool(opts.blockSize, opts.maxInflightFetches);
    this.#reclaimer = new MemoryReclaimer(8 * opts.blockSize, () => this.#installing.size === 0 && this.#arriving.size === 0,
      () => this.#fetchBuffers.trim());
    this.#fetchLimit = pLimit(opts.maxInflightFetches);
    this.#missing = opts.ttl > 0 ? new LRUCache({ max: 10_000, ttl: opts.ttl }) : undefined;
    this.#listings = opts.ttl > 0 && opts.listingEntries > 0 ? new ListingCache(opts.listingEntries, opts.ttl) : undefined;
    this.#memory = opts.memoryBytes > 0 ? new LRUCache<string, Buffer>({ maxSize: opts.memoryBytes, sizeCalculation: (b) => Math.max(1, b.length) }) : undefined;
    this.#diskHealth = new DiskHealth(3, opts.diskRetryAfter ?? 30_000, (bypassed, err) => {
      metrics?.cacheDiskBypassed.set(bypassed ? 1 : 0);
      if (bypassed) metrics?.cacheDiskBypasses.inc();
      events?.onDiskBypass?.(bypassed, err);
    });
  }

  static async open(upstream: Upstream, opts: CacheOptions, metrics?: Metrics, events?: CacheEvents): Promise<CacheManager> {
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
      const table = await NodeTable.open(opts.nodeTable, opts.dir);
      return new CacheManager(upstream, opts, blocks, table, metrics, events);
    } catch (err) {
      await blocks.close();
      throw err;
    }
  }

  get cacheBytes(): number { return this.#blocks.bytes; }
  get nodeCount(): number { return this.#table.size; }
  get memoryTierBytes(): number { return this.#memory?.calculatedSize ?? 0; }
  /** The block store itself, for `cache stats|verify|purge` (maintenance.ts). */
  get blockStore(): BlockStore { return this.#blocks; }

  /**
   * Which of the blocks covering start..end (inclusive) are cached now, for the request log:
   * all (hit), some (partial) or none (miss).
   */
  residency(node: Node, start: number, end: number): 'hit' | 'partial' | 'miss' {
    if (end < start) return 'hit';
    let cached = 0;
    const first = Math.floor(start / this.blockSize);
    const last = Math.floor(end / this.blockSize);
    for (let i = first; i <= last; i++) {
      const id = blockId(node.key, node.version, i);
      if (this.#memory?.has(id) || this.#installing.has(id) || this.#blocks.has(node.key, node.version, i)) cached++;
    }
    return cached === last - first + 1 ? 'hit' : cached === 0 ? 'miss' : 'partial';
  }

  /**
   * Drop the cached blocks and records of `path` and everything under it (`cache purge PATH`).
   * A tree is walked upstream, since block directories are named by digests. Returns the
   * number of nodes whose blocks were dropped.
   */
  async purge(path: string, identity: Identity = SHARED): Promise<number> {
    let dropped = 0;
    const drop = async (p: string): Promise<void> => {
      const key = nodeKey(this.upstream.id, identity.key, p);
      this.#readAhead.forget(key);
      if (this.#blocks.hasKey(key)) dropped++;
      await this.#blocks.dropKey(key);
      await this.#table.delete(key);
    };
    const walk = async (p: string): Promise<void> => {
      await drop(p);
      try {
        for await (const e of this.upstream.list(p, identity)) {
          if (e.kind === 'dir') await walk(e.path);
          else await drop(e.path);
        }
      } catch (err) {
        if (!(err instanceof NotFoundError) && !(err instanceof DavgateError && err.code === 'DAVGATE_NOT_A_DIRECTORY')) throw err;
      }
    };
    let kind: string | undefined;
    try {
      kind = (await this.upstream.stat(path, identity)).kind;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
    if (kind === 'dir') await walk(path);
    else await drop(path);
    for (const node of this.#table.under(path)) await drop(node.path);
    await this.invalidate(path);
    return dropped;
  }

  /** Resolves once every block being fetched has arrived and been written to the cache disk (or failed to). */
  async flush(): Promise<void> {
    // Reads still arriving first (a client may have had its bytes before the read ended).
    while (this.#arriving.size || this.#installs.size) {
      await Promise.allSettled([...[...this.#arriving.values()].map((a) => a.settled), ...this.#installs]);
      await new Promise((r) => setImmediate(r)); // the installs those reads started
    }
  }

  async close(): Promise<void> {
    await this.flush();
    await this.#table.close();
    await this.#blocks.close();
    await this.upstream.close?.();
  }

  #upstreamCall<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    return fn().then(
      (v) => { this.#metrics?.upstreamCall(operation, 'ok', (performance.now() - start) / 1000); return v; },
      (err) => { this.#metrics?.upstreamCall(operation, upstreamResultOf(err), (performance.now() - start) / 1000); throw err; },
    );
  }

  #nodeFrom(entry: Entry, key: string, prev: Node | undefined): Node {
    return {
      key, path: entry.path, kind: entry.kind, size: entry.size, mtimeMs: entry.mtimeMs, birthtimeMs: entry.birthtimeMs,
      validator: entry.validator,
      // Unchanged validator, same version: no need to hash it again (listings repeat a lot).
      version: prev && prev.validator === entry.validator ? prev.version : versionOf(entry.validator),
      checkedAt: Date.now(),
    };
  }

  /** Record a freshly seen entry (and persist it); a changed version drops the old blocks. */
  async #install(entry: Entry, identity: Identity): Promise<Node> {
    const key = nodeKey(this.upstream.id, identity.key, entry.path);
    const prev = this.#table.peek(key) ?? await this.#table.load(key);
    const node = this.#seen(entry, key, prev);
    // The parent's listing shows the old size and ETag (or lacks the entry): list it again.
    if (prev?.version !== node.version) this.#forgetParentListing(entry.path, identity);
    await this.#table.put(node);
    return node;
  }

  /** The same for a listing entry, kept for this run only and synchronous: listings are long. */
  #remember(entry: Entry, identity: Identity): Node {
    const key = nodeKey(this.upstream.id, identity.key, entry.path);
    const node = this.#seen(entry, key, this.#table.peek(key));
    this.#table.remember(node);
    return node;
  }

  #seen(entry: Entry, key: string, prev: Node | undefined): Node {
    this.#missing?.delete(key);
    const node = this.#nodeFrom(entry, key, prev);
    if (prev && prev.version !== node.version) {
      this.#metrics?.revalidations.inc({ result: 'changed' });
      this.#readAhead.forget(key);
      void this.#blocks.dropKey(key, node.version);
    } else if (prev) {
      this.#metrics?.revalidations.inc({ result: 'same' });
    }
    return node;
  }

  /**
   * getnode: the node for a path, fresh within the TTL, else revalidated upstream. A name
   * missing in one Unicode normal form is looked up in the other (macOS sends NFD, most
   * clients NFC), so a file is found whichever form created it; node.path is the real name.
   */
  async getnode(path: string, identity: Identity = SHARED): Promise<Node> {
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

  async #getnodeExact(path: string, identity: Identity): Promise<Node> {
    const key = nodeKey(this.upstream.id, identity.key, path);
    const cached = this.#table.peek(key);
    if (cached && Date.now() - cached.checkedAt < this.#opts.ttl) return cached;
    // Absent within the TTL too: clients probe the same missing names over and over
    // (Finder: ._*, .DS_Store, .Spotlight-V100, ...); they cost no upstream round trip.
    if (this.#missing?.has(key)) throw new NotFoundError(path);
    return this.#statFlight.run(key, async () => {
      let entry: Entry;
      try {
        entry = await this.#upstreamCall('stat', () => this.upstream.stat(path, identity));
      } catch (err) {
        if (err instanceof NotFoundError) {
          this.#metrics?.revalidations.inc({ result: 'gone' });
          this.#missing?.set(key, path);
          this.#forgetParentListing(path, identity);
          await this.#table.delete(key);
          void this.#blocks.dropKey(key);
        } else if (isTransient(err)) {
          // An unreachable upstream is not a deletion (Arla's disconnected operation): what
          // we knew is served, marked stale, until the upstream answers again.
          const known = cached ?? await this.#table.load(key);
          if (known) {
            this.#metrics?.staleServed.inc();
            return { ...known, stale: true };
          }
        }
        throw err;
      }
      return this.#install(entry, identity);
    }).promise;
  }

  /**
   * Children of a directory as nodes, streamed; each is remembered so a following GET skips a
   * stat. Within the TTL a listing is answered from memory.
   */
  async *list(path: string, identity: Identity = SHARED): AsyncGenerator<Node> {
    const key = nodeKey(this.upstream.id, identity.key, path);
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

  #blockLength(node: Node, index: number): number {
    return Math.max(0, Math.min(this.blockSize, node.size - index * this.blockSize));
  }

  /** getdata: one verified block of a node, from the cache or fetched once for all askers. */
  async getdata(node: Node, index: number, identity: Identity = SHARED): Promise<Buffer> {
    const buf = await this.#getdata(node, index, identity);
    return this.#fetchBuffers.owns(buf) ? Buffer.from(buf) : buf; // a pooled buffer is reused later
  }

  /** getdata's buffer, possibly pooled: the caller holds it in the turn it gets it (blockpool.ts). */
  async #getdata(node: Node, index: number, identity: Identity): Promise<Buffer> {
    const length = this.#blockLength(node, index);
    if (length === 0) return Buffer.alloc(0);
    const id = blockId(node.key, node.version, index);
    const remembered = this.#memory?.get(id);
    const inMemory = remembered ?? this.#installing.get(id);
    if (inMemory) {
      this.#metrics?.blockLookup('hit');
      if (remembered) this.#metrics?.memoryHits.inc();
      this.#metrics?.bytesServed.inc({ source: 'cache' }, inMemory.length);
      return inMemory;
    }
    if (!this.#blockFlight.has(id) && this.#blocks.has(node.key, node.version, index)) {
      const buf = await this.#blocks.read(node.key, node.version, index, length);
      if (buf) {
        this.#keepInMemory(id, buf);
        this.#metrics?.blockLookup('hit');
        this.#metrics?.bytesServed.inc({ source: 'cache' }, buf.length);
        return buf;
      }
    }
    const { promise, joined } = this.#blockFlight.run(id, () => this.#fetch(node, index, length, identity));
    this.#metrics?.blockLookup(joined ? 'join' : 'miss');
    const buf = await promise;
    this.#keepInMemory(id, buf);
    this.#metrics?.bytesServed.inc({ source: joined ? 'cache' : 'upstream' }, buf.length);
    return buf;
  }

  /**
   * Small blocks (small files, mostly) are also kept in memory, already verified: a fresh
   * open/read/close per request costs more than the request itself (docs/architecture.md, measured
   * ceilings). Keyed like the block files, by version, so it can never serve an old version.
   */
  #keepInMemory(id: string, buf: Buffer): void {
    if (this.#memory && buf.length <= this.#opts.memoryMaxBlockBytes) this.#memory.set(id, buf);
  }

  async #fetch(node: Node, index: number, length: number, identity: Identity): Promise<Buffer> {
    // Fetched or installed while we waited for our turn (the single-flight gap): use that.
    const installing = this.#installing.get(blockId(node.key, node.version, index));
    if (installing) return installing;
    if (this.#blocks.has(node.key, node.version, index)) {
      const buf = await this.#blocks.read(node.key, node.version, index, length);
      if (buf) return buf;
    }
    const id = blockId(node.key, node.version, index);
    const arriving = new ArrivingBlock(length);
    this.#arriving.set(id, arriving);
    return new Promise<Buffer>((resolve, reject) => {
      // The fetch slot is held until the block is on the cache disk, so blocks held in memory
      // stay bounded by maxInflightFetches even when the disk is slower than the upstream.
      this.#fetchLimit(async () => {
        // Whole big blocks only: small ones are kept in the memory tier, never handed back.
        const pooled = length === this.blockSize && length > this.#opts.memoryMaxBlockBytes ? this.#fetchBuffers.take() : undefined;
        arriving.buffer = pooled ?? Buffer.allocUnsafe(length);
        let data: Buffer;
        try {
          data = await this.#upstreamCall('read',
            () => this.upstream.read(node.path, { offset: index * this.blockSize, length, expectValidator: node.validator, sink: arriving }, identity));
          // The object shrank under us: this node version is gone.
          if (data.length !== length) throw new PreconditionFailedError('upstream object changed during read');
        } catch (err) {
          // Changed or gone behind our back: the next getnode must ask the upstream again.
          if (err instanceof PreconditionFailedError || err instanceof NotFoundError) this.#table.forget(node.key);
          arriving.fail(err);
          if (pooled) this.#fetchBuffers.discard(pooled); // an attempt may still be writing into it
          reject(err);
          return;
        } finally {
          this.#arriving.delete(id);
        }
        if (pooled && arriving.abandoned) this.#fetchBuffers.discard(pooled);
        arriving.done(data);
        this.#metrics?.upstreamBytes.inc(data.length);
        resolve(data);
        try {
          await this.#installFetched(node, index, id, data);
        } finally {
          if (pooled) this.#fetchBuffers.release(pooled);
        }
      }).catch(reject); // whatever escaped the above (the block was not served yet, else a no-op)
    });
  }

  /**
   * Served at once; written to the cache disk meanwhile (the disk is optional: a failed
   * install still served the bytes). Until installed, the block is answered from memory.
   */
  #installFetched(node: Node, index: number, id: string, data: Buffer): Promise<void> {
    if (this.#diskHealth.bypassed) return Promise.resolve();
    this.#installing.set(id, data);
    const done = this.#blocks.install(node.key, node.version, index, data).then(
      () => this.#diskHealth.succeeded(),
      (err: unknown) => this.#diskHealth.failed(err),
    ).finally(() => {
      this.#installing.delete(id);
      this.#installs.delete(done);
      if (data.length > this.#opts.memoryMaxBlockBytes) this.#reclaimer.dropped(data.length);
    });
    this.#installs.add(done);
    return done;
  }

  /** Start fetching a block unless it is cached or on its way; true when this call started it. */
  #startFetch(node: Node, index: number, identity: Identity, result: 'miss' | 'prefetch'): boolean {
    const id = blockId(node.key, node.version, index);
    if (this.#blockFlight.has(id) || this.#installing.has(id) || this.#memory?.has(id) || this.#blocks.has(node.key, node.version, index)) return false;
    const length = this.#blockLength(node, index);
    if (length === 0) return false;
    this.#metrics?.blockLookup(result);
    this.#blockFlight.run(id, () => this.#fetch(node, index, length, identity)).promise.catch(() => {});
    return true;
  }

  /**
   * The bytes start..end (inclusive) of a node, in verified pieces of at most a chunk (512 KiB)
   * from block files, or block-sized from memory or the upstream. Sequential access grows a
   * read-ahead window of whole blocks fetched in parallel.
   *
   * A yielded buffer is valid only until the consumer asks for the next one: chunks from block
   * files are read into a ring of two pooled buffers per call (512 KiB to 2 MiB each), so a
   * 256 MiB stream costs at most 4 MiB of memory and no garbage. Consumers must be done with a buffer (written out) before
   * next(), and with all of them when they end the stream.
   */
  async *readRange(node: Node, start: number, end: number, identity: Identity = SHARED): AsyncGenerator<Buffer> {
    if (end < start) return;
    let ring: Buffer[] | undefined;
    const buffers = () => {
      if (ring) return ring;
      // A lone stream reads 2 MiB at a time (fewer reads and wake-ups: ~+20 % throughput), two
      // or three 1 MiB, more 512 KiB: 16 streams hold ~20 MiB of buffers.
      const g = ++this.#streams === 1 ? 4 : this.#streams <= 3 ? 2 : 1;
      return (ring = [this.#chunks.take(g), this.#chunks.take(g)]);
    };
    const first = Math.floor(start / this.blockSize);
    const last = Math.floor(end / this.blockSize);
    const lastOfFile = Math.floor(Math.max(0, node.size - 1) / this.blockSize);
    try {
      for (let i = first; i <= last; i++) {
        // The block needed now is asked for first (the fetch queue is first come, first served);
        // the blocks this request will need anyway are fetched in parallel from the start (up to
        // the read-ahead maximum); beyond its end, the sequential window decides.
        const started = this.#startFetch(node, i, identity, 'miss');
        const ahead = Math.max(this.#readAhead.advance(node.key, i), Math.min(last - i, this.#opts.readAheadMaxBlocks));
        for (let j = 1; j <= ahead && i + j <= lastOfFile; j++) this.#startFetch(node, i + j, identity, 'prefetch');
        const from = i === first ? start - i * this.blockSize : 0;
        const to = i === last ? end - i * this.blockSize + 1 : this.#blockLength(node, i);
        yield* this.#blockRange(node, i, from, to, identity, buffers, started);
      }
    } finally {
      // The consumer is done with every buffer once it ends the stream (see above).
      if (ring) {
        this.#streams--;
        for (const b of ring) this.#chunks.give(b);
      }
    }
  }

  /** Bytes from..to (exclusive) of block `index`; `started`: this read started its fetch. */
  async *#blockRange(node: Node, index: number, from: number, to: number, identity: Identity, buffers: () => Buffer[], started: boolean): AsyncGenerator<Buffer> {
    const length = this.#blockLength(node, index);
    const id = blockId(node.key, node.version, index);
    const arriving = this.#arriving.get(id);
    if (arriving) {
      if (!started) this.#metrics?.blockLookup('join');
      // The buffer yielded from is held until the consumer is done with it (pooled: blockpool.ts).
      let held: Buffer | undefined;
      try {
        for (let pos = from; pos < to;) {
          const end = Math.min(await arriving.available(pos), to);
          const buf = arriving.buffer; // the read's own buffer may replace the sink's when it ends
          if (buf !== held) {
            this.#fetchBuffers.hold(buf);
            if (held) this.#fetchBuffers.release(held);
            held = buf;
          }
          this.#metrics?.bytesServed.inc({ source: 'upstream' }, end - pos);
          yield buf.subarray(pos, end);
          pos = end;
        }
      } finally {
        if (held) this.#fetchBuffers.release(held);
      }
      return;
    }
    // Small blocks go through getdata, which keeps them in the memory tier.
    if (length > this.#opts.memoryMaxBlockBytes && !this.#blockFlight.has(id) && this.#blocks.has(node.key, node.version, index)) {
      const reader = await this.#blocks.openBlock(node.key, node.version, index, length);
      if (reader) {
        this.#metrics?.blockLookup('hit');
        // Read in groups of `g` chunks (one read each, every chunk checked). Double buffering:
        // the next group is read while this one is written to the client; the one yielded is
        // free again when we resume, and the group after next goes into it.
        const ring = buffers();
        const g = ring[0]!.length / CHUNK;
        const c0 = Math.floor(from / CHUNK);
        const c1 = Math.floor((to - 1) / CHUNK);
        const slot = (c: number) => ring[((c - c0) / g) % ring.length];
        const pending: Array<Promise<Buffer | undefined>> = [];
        const readGroup = (c: number) => { if (c <= c1) pending.push(reader.chunk(c, slot(c), Math.min(g, c1 - c + 1))); };
        readGroup(c0);
        readGroup(c0 + g);
        try {
          for (let c = c0; c <= c1; c += g) {
            const buf = await pending.shift()!;
            if (!buf) {
              // Damaged on disk (now dropped): the rest of this block comes from the upstream.
              yield* this.#blockFromGetdata(node, index, Math.max(from, c * CHUNK), to, identity);
              return;
            }
            const a = c === c0 ? from - c * CHUNK : 0;
            const b = Math.min(buf.length, to - c * CHUNK);
            this.#metrics?.bytesServed.inc({ source: 'cache' }, b - a);
            yield a === 0 && b === buf.length ? buf : buf.subarray(a, b);
            readGroup(c + 2 * g);
          }
        } finally {
          // A read still in flight (the client went away) must land before its buffer is reused.
          await Promise.allSettled(pending);
          await reader.close();
        }
        return;
      }
    }
    yield* this.#blockFromGetdata(node, index, from, to, identity);
  }

  async *#blockFromGetdata(node: Node, index: number, from: number, to: number, identity: Identity): AsyncGenerator<Buffer> {
    const data = await this.#getdata(node, index, identity);
    this.#fetchBuffers.hold(data);
    try {
      yield from === 0 && to === data.length ? data : data.subarray(from, to);
    } finally {
      this.#fetchBuffers.release(data);
    }
  }

  /** Write-through: the upstream commits atomically, then the new node is installed. */
  async write(path: string, body: Readable, size: number | undefined, identity: Identity = SHARED): Promise<Node> {
    const entry = await this.#upstreamCall('write', () => this.upstream.write(path, body, { size }, identity));
    this.#forgetPath(parentOf(path), identity);
    return this.#install(entry, identity);
  }

  async mkdir(path: string, identity: Identity = SHARED): Promise<void> {
    await this.#upstreamCall('mkdir', () => this.upstream.mkdir(path, identity));
    this.#forgetPath(path, identity);
    this.#forgetPath(parentOf(path), identity);
  }

  async remove(path: string, identity: Identity = SHARED): Promise<void> {
    await this.#upstreamCall('remove', () => this.upstream.remove(path, identity));
    await this.#dropTree(path);
    this.#forgetPath(parentOf(path), identity);
  }

  async move(from: string, to: string, overwrite: boolean, identity: Identity = SHARED): Promise<void> {
    await this.#upstreamCall('move', () => this.upstream.move(from, to, { overwrite }, identity));
    await this.#dropTree(to);
    this.#listings?.forgetWhere((p) => isWithin(p, from));
    // Re-key every node we know under `from`: one directory rename each, no refetch.
    for (const node of this.#table.under(from)) {
      const newPath = to + node.path.slice(from.length);
      const newKey = nodeKey(this.upstream.id, identity.key, newPath);
      await this.#blocks.rekey(node.key, newKey);
      this.#table.forget(node.key);
      // Unconfirmed until the next getnode; same validator there means the blocks stay valid.
      this.#table.remember({ ...node, key: newKey, path: newPath, checkedAt: 0 });
    }
    this.#forgetMissingUnder(to);
    this.#forgetPath(parentOf(from), identity);
    this.#forgetPath(parentOf(to), identity);
  }

  async copy(from: string, to: string, overwrite: boolean, shallow: boolean, identity: Identity = SHARED): Promise<void> {
    await this.#upstreamCall('copy', () => this.upstream.copy(from, to, { overwrite, shallow }, identity));
    await this.#dropTree(to);
    this.#forgetMissingUnder(to);
    this.#forgetPath(parentOf(to), identity);
  }

  async quota(path: string, identity: Identity = SHARED): Promise<Quota | undefined> {
    if (!this.upstream.quota) return undefined;
    return this.#upstreamCall('quota', () => this.upstream.quota!(path, identity));
  }

  async setMtime(path: string, mtimeMs: number, identity: Identity = SHARED): Promise<void> {
    if (!this.upstream.setMtime) return;
    await this.#upstreamCall('setmtime', () => this.upstream.setMtime!(path, mtimeMs, identity));
    this.#forgetPath(path, identity);
    this.#forgetParentListing(path, identity); // it shows the mtime

  }

  /** Admin invalidation: the next access to anything under `prefix` goes upstream. */
  async invalidate(prefix: string): Promise<number> {
    const keys = await this.#table.invalidate(prefix);
    for (const k of keys) this.#readAhead.forget(k);
    this.#forgetMissingUnder(prefix);
    const parent = parentOf(prefix);
    this.#listings?.forgetWhere((p) => p === parent || isWithin(p, prefix));
    return keys.length;
  }

  async #dropTree(path: string): Promise<void> {
    this.#listings?.forgetWhere((p) => isWithin(p, path));
    for (const node of this.#table.under(path)) {
      this.#table.forget(node.key);
      this.#readAhead.forget(node.key);
      await this.#blocks.dropKey(node.key);
      await this.#table.delete(node.key);
    }
  }

  #forgetPath(path: string, identity: Identity): void {
    const key = nodeKey(this.upstream.id, identity.key, path);
    this.#table.forget(key);
    this.#missing?.delete(key);
    this.#listings?.forget(key);
  }

  /** The listing of `path`'s directory shows `path` as it was: list it again next time. */
  #forgetParentListing(path: string, identity: Identity): void {
    if (path !== '/') this.#listings?.forget(nodeKey(this.upstream.id, identity.key, parentOf(path)));
  }

  /** Forget that anything at or under `prefix` was absent (a tree appeared there). */
  #forgetMissingUnder(prefix: string): void {
    if (!this.#missing) return;
    for (const [key, path] of this.#missing.entries()) if (isWithin(path, prefix)) this.#missing.delete(key);
  }
}
