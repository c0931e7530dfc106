import pLimit from 'p-limit';
import { LRUCache } from 'lru-cache';
import type { ReadSink, Upstream } from '../upstream/types.js';
import { NotFoundError, PreconditionFailedError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { blockId, type BlockStore } from './blockstore.js';
import type { Node } from './nodetable.js';
import { SingleFlight } from './singleflight.js';
import type { Identity } from './identity.js';
import { ReadAhead } from './readahead.js';
import { ArrivingBlock } from './arriving.js';
import { BlockBufferPool } from './blockpool.js';
import { MemoryReclaimer } from './reclaim.js';
import type { DiskHealth } from './diskhealth.js';
import { metered } from './metered.js';

// Getting blocks: the memory tier, the block store, or one upstream read shared by every asker.
//
// Block lifecycle (a block is (node key, version, index)); `locate` says where one is:
//   absent     -> a read starts a fetch (single flight: one fetch per block, all askers join)
//   arriving   a fetch is in flight: it waits for one of `maxInflightFetches` upstream slots,
//              then the upstream writes into its buffer; readers stream what has arrived
//   settling   the fetch just ended and its single flight has not let go yet: joined
//   installing fetched whole, held in memory while it is written to the cache disk
//   memory     small blocks only: verified, in the memory tier (and on disk)
//   disk       an installed block file; read verified, chunk by chunk
//   evicted or damaged: dropped from the index and its file removed, absent again.
// Buffers: a whole big block is fetched into a pooled buffer (blockpool.ts). The fetch holds it
// from its slot until the block is installed (or the install failed); a reader holds it while a
// sink has a piece of it. After the last release it goes back to the pool at the end of that
// event-loop turn; one an abandoned upstream attempt may still write into is never reused.
// Small blocks and blocks read from disk are plain buffers, owned by whoever keeps them.
// Order: fetch slot, then fetch buffer, then the install. A block file is pinned while read
// (eviction skips it); eviction never waits, so no pin ever waits for a fetch slot or the reverse.

export type Where = 'absent' | 'arriving' | 'settling' | 'installing' | 'memory' | 'disk';

export interface FetcherOptions {
  blockSize: number;
  readAheadMaxBlocks: number;
  maxInflightFetches: number;
  /** Memory tier for small blocks: total bytes, and the largest block kept there. */
  memoryBytes: number;
  memoryMaxBlockBytes: number;
  /** May the data of this file be kept (cache policy)? Else it is read through, every time. */
  cacheable?: (path: string, size: number) => boolean;
}

const EMPTY = Buffer.alloc(0);

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => { resolve = a; reject = b; });
  return { promise, resolve, reject };
}

export class BlockFetcher {
  readonly upstream: Upstream;
  readonly blocks: BlockStore;
  readonly blockSize: number;
  readonly memoryMaxBlockBytes: number;
  readonly readAheadMaxBlocks: number;
  readonly readAhead: ReadAhead;
  /** Buffers of whole fetched blocks, reused by the next fetches. */
  readonly buffers: BlockBufferPool;
  readonly #metrics: Metrics | undefined;
  readonly #diskHealth: DiskHealth;
  /** The node changed or vanished upstream during a read: its record must be revalidated. */
  readonly #onChanged: (key: string) => void;
  readonly #flight = new SingleFlight<Buffer>();
  readonly #limit: ReturnType<typeof pLimit>;
  /** Blocks fetched and being written to the cache disk, by block id (bounded by the fetch limit). */
  readonly #installing = new Map<string, Buffer>();
  readonly #installs = new Set<Promise<void>>();
  /** Blocks being fetched, readable as their bytes arrive (by block id, while the fetch runs). */
  readonly #arriving = new Map<string, ArrivingBlock>();
  /** Verified small blocks in memory, by block id; bounded by bytes. */
  readonly #memory: LRUCache<string, Buffer> | undefined;
  readonly #reclaimer: MemoryReclaimer;
  /** Consecutive blocks fetched in one upstream read (the upstream's preferredReadBytes). */
  readonly #spanBlocks: number;
  readonly #cacheable: (path: string, size: number) => boolean;

  constructor(upstream: Upstream, blocks: BlockStore, opts: FetcherOptions, diskHealth: DiskHealth, onChanged: (key: string) => void, metrics?: Metrics) {
    this.upstream = upstream;
    this.blocks = blocks;
    this.blockSize = opts.blockSize;
    this.memoryMaxBlockBytes = opts.memoryMaxBlockBytes;
    this.readAheadMaxBlocks = opts.readAheadMaxBlocks;
    this.readAhead = new ReadAhead(opts.readAheadMaxBlocks);
    this.buffers = new BlockBufferPool(opts.blockSize, opts.maxInflightFetches);
    this.#diskHealth = diskHealth;
    this.#onChanged = onChanged;
    this.#metrics = metrics;
    this.#limit = pLimit(opts.maxInflightFetches);
    this.#spanBlocks = Math.max(1, Math.floor((upstream.preferredReadBytes ?? 0) / opts.blockSize));
    this.#cacheable = opts.cacheable ?? (() => true);
    this.#memory = opts.memoryBytes > 0 ? new LRUCache<string, Buffer>({ maxSize: opts.memoryBytes, sizeCalculation: (b) => Math.max(1, b.length) }) : undefined;
    this.#reclaimer = new MemoryReclaimer(8 * opts.blockSize, () => this.#installing.size === 0 && this.#arriving.size === 0,
      () => this.buffers.trim());
  }

  get memoryTierBytes(): number { return this.#memory?.calculatedSize ?? 0; }

  /**
   * Where block `index` of `node` is now (`id`: its blockId). The one answer every path uses;
   * the order is the preference: bytes already in memory before a disk read, and a fetch in
   * flight is joined rather than racing it with a read of the disk.
   */
  locate(node: Node, index: number, id: string): Where {
    if (this.#arriving.has(id)) return 'arriving';
    if (this.#memory?.has(id)) return 'memory';
    if (this.#installing.has(id)) return 'installing';
    if (this.#flight.has(id)) return 'settling';
    return this.blocks.hasId(id) ? 'disk' : 'absent';
  }

  /**
   * Block `index` when it is in the memory tier, counted as a hit; else undefined. Synchronous:
   * the hot small read needs no promise. The buffer is the tier's own, never pooled or reused.
   */
  inMemory(node: Node, index: number): Buffer | undefined {
    const id = blockId(node.key, node.version, index);
    return this.#memory?.has(id) ? this.#fromMemory(id, true) : undefined;
  }

  /** The block being fetched under `id`, readable as it arrives (state 'arriving'). */
  arriving(id: string): ArrivingBlock | undefined {
    return this.#arriving.get(id);
  }

  blockLength(node: Node, index: number): number {
    return Math.max(0, Math.min(this.blockSize, node.size - index * this.blockSize));
  }

  /** getdata: one verified block of a node, a buffer the caller owns. */
  async getdata(node: Node, index: number, identity: Identity): Promise<Buffer> {
    const buf = await this.getdataPooled(node, index, identity);
    return this.buffers.owns(buf) ? Buffer.from(buf) : buf; // a pooled buffer is reused later
  }

  /** getdata's buffer, possibly pooled: the caller holds it in the turn it gets it (blockpool.ts). */
  async getdataPooled(node: Node, index: number, identity: Identity): Promise<Buffer> {
    const length = this.blockLength(node, index);
    if (length === 0) return EMPTY;
    const id = blockId(node.key, node.version, index);
    let at = this.locate(node, index, id);
    if (at === 'disk') {
      const buf = await this.blocks.read(node.key, node.version, index, length);
      if (buf) {
        this.#keepInMemory(node, id, buf);
        this.#metrics?.blockLookup('hit');
        this.#metrics?.served('cache', buf.length);
        return buf;
      }
      // Damaged (now dropped), or evicted meanwhile; another read may have fetched it since.
      at = this.locate(node, index, id);
    }
    if (at === 'memory' || at === 'installing') return this.#fromMemory(id, at === 'memory');
    const { promise, joined } = this.#flight.run(id, () => this.#fetch(node, index, [id], [length], identity)[0]!);
    this.#metrics?.blockLookup(joined ? 'join' : 'miss');
    const buf = await promise;
    this.#keepInMemory(node, id, buf);
    this.#metrics?.served(joined ? 'cache' : 'upstream', buf.length);
    return buf;
  }

  #fromMemory(id: string, tier: boolean): Buffer {
    const buf = (tier ? this.#memory!.get(id) : this.#installing.get(id))!;
    this.#metrics?.blockLookup('hit');
    if (tier) this.#metrics?.memoryHits.inc();
    this.#metrics?.served('cache', buf.length);
    return buf;
  }

  /**
   * A read of `node` is about to need block `index` (and the blocks up to `last` after it):
   * start fetching it unless it is cached or on its way, and the blocks worth fetching ahead.
   * The block needed now is asked for first (the fetch queue is first come, first served); the
   * blocks this request needs anyway are fetched in parallel from the start (up to the read-ahead
   * maximum); beyond its end, the sequential window decides. True when this call started the
   * fetch of `index` itself.
   */
  demand(node: Node, index: number, last: number, identity: Identity): boolean {
    const ahead = Math.max(this.readAhead.advance(node.key, index), Math.min(last - index, this.readAheadMaxBlocks));
    const lastOfFile = Math.floor(Math.max(0, node.size - 1) / this.blockSize);
    const end = Math.min(index + ahead, lastOfFile);
    if (this.#spanBlocks > 1) return this.#startSpans(node, index, end, end < lastOfFile, identity);
    const started = this.#startFetch(node, index, identity, 'miss');
    for (let j = index + 1; j <= end; j++) this.#startFetch(node, j, identity, 'prefetch');
    return started;
  }

  #startFetch(node: Node, index: number, identity: Identity, result: 'miss' | 'prefetch'): boolean {
    const id = blockId(node.key, node.version, index);
    if (this.locate(node, index, id) !== 'absent') return false;
    const length = this.blockLength(node, index);
    if (length === 0) return false;
    this.#metrics?.blockLookup(result);
    this.#flight.run(id, () => this.#fetch(node, index, [id], [length], identity)[0]!).promise.catch(() => {});
    return true;
  }

  /**
   * demand() for an upstream that prefers big reads: the absent whole blocks of index..end go
   * in runs of up to #spanBlocks, one upstream read each (the block needed now first in its
   * run, so its bytes come first). A shorter run at the end of the window waits until the
   * window has grown over a whole run (`deferTail`), unless it holds the block needed now:
   * else every step of a sequential read would fetch one block alone at the window's edge.
   */
  #startSpans(node: Node, index: number, end: number, deferTail: boolean, identity: Identity): boolean {
    let started = false;
    let run: number[] = [];
    const flush = (deferrable: boolean) => {
      const demanded = run[0] === index;
      if (run.length && !(deferrable && !demanded && run.length < this.#spanBlocks)) this.#startRun(node, run[0]!, run.length, demanded, identity);
      started ||= demanded;
      run = [];
    };
    for (let i = index; i <= end; i++) {
      const length = this.blockLength(node, i);
      if (length === this.blockSize && length > this.memoryMaxBlockBytes && this.locate(node, i, blockId(node.key, node.version, i)) === 'absent') {
        run.push(i);
        if (run.length === this.#spanBlocks) flush(false);
        continue;
      }
      flush(false);
      // Cached or on its way already, or a short or small block: fetched alone.
      if (this.#startFetch(node, i, identity, i === index ? 'miss' : 'prefetch') && i === index) started = true;
    }
    flush(deferTail);
    return started;
  }

  /** Starts the fetch of `count` absent blocks from `first` as one upstream read. */
  #startRun(node: Node, first: number, count: number, demanded: boolean, identity: Identity): void {
    const ids: string[] = [];
    const lengths: number[] = [];
    for (let j = 0; j < count; j++) {
      ids.push(blockId(node.key, node.version, first + j));
      lengths.push(this.blockLength(node, first + j));
      this.#metrics?.blockLookup(j === 0 && demanded ? 'miss' : 'prefetch');
    }
    // Each block has its own single flight; the first to run starts the one read of them all.
    let blocks: Array<Promise<Buffer>> | undefined;
    for (let j = 0; j < count; j++) {
      const fetchOne = () => (blocks ??= this.#fetch(node, first, ids, lengths, identity))[j]!;
      this.#flight.run(ids[j]!, fetchOne).promise.catch(() => {}); // its readers see the error
    }
  }

  /**
   * Small blocks (small files, mostly) are also kept in memory, already verified: a fresh
   * open/read/close per request costs more than the request itself. Keyed like the block
   * files, by version, so it can never serve an old version.
   */
  #keepInMemory(node: Node, id: string, buf: Buffer): void {
    if (this.#memory && buf.length <= this.memoryMaxBlockBytes && this.#cacheable(node.path, node.size)) this.#memory.set(id, buf);
  }

  /**
   * The upstream read of consecutive blocks from `first` (`ids`, `lengths`: one or a span of
   * whole blocks), run once per block by the single flights; one promise per block.
   */
  #fetch(node: Node, first: number, ids: readonly string[], lengths: readonly number[], identity: Identity): Array<Promise<Buffer>> {
    const total = lengths.reduce((a, b) => a + b, 0);
    const arriving = lengths.map((n) => new ArrivingBlock(n));
    ids.forEach((id, j) => this.#arriving.set(id, arriving[j]!));
    const results = ids.map(() => deferred<Buffer>());
    const fail = (err: unknown) => results.forEach((r) => r.reject(err));
    // The fetch slot is held until the blocks are on the cache disk, so the blocks held in
    // memory stay bounded by maxInflightFetches reads (of a span each, at most) even when the
    // disk is slower than the upstream.
    this.#limit(async () => {
      // Whole big blocks only: small ones are kept in the memory tier, never handed back.
      const pooled = ids.length > 1 || (total === this.blockSize && total > this.memoryMaxBlockBytes);
      const whole = pooled ? this.buffers.take(total) : Buffer.allocUnsafe(total);
      const parts = ids.length > 1 ? this.buffers.parts(whole, lengths) : [whole];
      parts.forEach((p, j) => { arriving[j]!.buffer = p; });
      const sink = ids.length > 1 ? new SpanSink(whole, arriving) : arriving[0]!;
      let data: Buffer;
      try {
        data = await metered(this.#metrics, 'read',
          () => this.upstream.read(node.path, { offset: first * this.blockSize, length: total, expectValidator: node.validator, sink }, identity));
        // The object shrank under us: this node version is gone.
        if (data.length !== total) throw new PreconditionFailedError('upstream object changed during read');
      } catch (err) {
        // Changed or gone behind our back: the next getnode must ask the upstream again.
        if (err instanceof PreconditionFailedError || err instanceof NotFoundError) this.#onChanged(node.key);
        for (const a of arriving) a.fail(err);
        if (pooled) this.buffers.discard(whole); // an attempt may still be writing into it
        fail(err);
        return;
      } finally {
        for (const id of ids) this.#arriving.delete(id);
      }
      if (pooled && sink.abandoned) this.buffers.discard(whole);
      // A backend may answer with a buffer of its own instead of the sink's.
      let at = 0;
      const blocks = data === whole ? parts : lengths.map((n) => data.subarray(at, (at += n)));
      blocks.forEach((b, j) => arriving[j]!.done(b));
      this.#metrics?.upstreamBytes.inc(total);
      blocks.forEach((b, j) => results[j]!.resolve(b));
      try {
        await Promise.all(blocks.map((b, j) => this.#install(node, first + j, ids[j]!, b)));
      } finally {
        if (pooled) this.buffers.release(whole);
      }
    }).catch(fail); // whatever escaped the above (the blocks were not served yet, else a no-op)
    return results.map((r) => r.promise);
  }

  /**
   * Served at once; written to the cache disk meanwhile (the disk is optional: a failed
   * install still served the bytes). Until installed, the block is answered from memory.
   */
  #install(node: Node, index: number, id: string, data: Buffer): Promise<void> {
    if (this.#diskHealth.bypassed || !this.#cacheable(node.path, node.size)) return Promise.resolve();
    this.#installing.set(id, data);
    const done = this.blocks.install(node.key, node.version, index, data).then(
      () => this.#diskHealth.succeeded(),
      (err: unknown) => this.#diskHealth.failed(err),
    ).finally(() => {
      this.#installing.delete(id);
      this.#installs.delete(done);
      if (data.length > this.memoryMaxBlockBytes) this.#reclaimer.dropped(data.length);
    });
    this.#installs.add(done);
    return done;
  }

  /** Drop the blocks of node `key` (all, or all but `keepVersion`'s) and its read-ahead state. */
  dropBlocks(key: string, keepVersion?: string): Promise<void> {
    this.readAhead.forget(key);
    return this.blocks.dropKey(key, keepVersion);
  }

  /** Resolves once every block being fetched has arrived and been written to the cache disk (or failed to). */
  async flush(): Promise<void> {
    // Reads still arriving first (a client may have had its bytes before the read ended).
    while (this.#arriving.size || this.#installs.size) {
      await Promise.allSettled([...[...this.#arriving.values()].map((a) => a.settled), ...this.#installs]);
      await new Promise((r) => setImmediate(r)); // the installs those reads started
    }
  }
}

/** The sink of one read of several blocks: announces each block's bytes as they arrive. */
class SpanSink implements ReadSink {
  abandoned = false;
  constructor(readonly buffer: Buffer, readonly blocks: readonly ArrivingBlock[]) {}

  progress(filled: number): void {
    let at = 0;
    for (const b of this.blocks) {
      if (filled <= at) return;
      b.progress(filled - at);
      at += b.length;
    }
  }

  abandon(): void {
    this.abandoned = true;
    for (const b of this.blocks) b.abandon();
  }
}
