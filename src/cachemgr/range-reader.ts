import type { Metrics } from '../metrics.js';
import { CHUNK, type BlockReader } from './blockfile.js';
import { blockId } from './blockstore.js';
import type { Node } from './nodetable.js';
import type { Identity } from './identity.js';
import type { ArrivingBlock } from './arriving.js';
import { ChunkPool } from './chunkpool.js';
import type { BlockFetcher } from './fetcher.js';

// Streaming a byte range of a node into a sink, block by block, from wherever each block is
// (BlockFetcher.locate): arriving from the upstream, in memory, or in a block file.
//
// Buffers handed to the sink, by the block's state (see fetcher.ts for the whole lifecycle):
//   arriving   pieces of the fetch buffer as its bytes arrive; held (blockpool.ts) until the
//              sink is done with the last piece, so the pool cannot reuse it under the sink
//   memory, installing, settling, absent (then fetched)
//              the whole block from getdata, held the same way
//   disk       a big block is read chunk group by chunk group into a ring of buffers from
//              the chunk pool (two, or one when many streams run), one ring per stream: the
//              next group is read while the sink writes this one, and a slot is read into
//              again only once the sink's promise for it resolved. The ring goes back to the pool when the range ends (or fails), after
//              every read into it has landed. The block file is pinned meanwhile.
// So: a chunk is never reused before the promise of the sink's write of it resolved.

/** Where a range is streamed to. */
export interface BlockSink {
  /**
   * Take `chunk`; the promise resolves once `chunk` may be reused (it was written out), and
   * rejects when the sink can take no more (the stream then ends with that error).
   */
  write(chunk: Buffer): Promise<void>;
}

/**
 * The read state of one stream over block files: its ring of buffers (taken from the chunk
 * pool at its first block read from disk), which slot the next group read goes to, and the
 * next block, opened and its first group read while this block's last group is written out,
 * so the socket never waits for an open at a block boundary.
 */
class Ring {
  bufs: Buffer[] | undefined;
  turn = 0;
  /** The last block of the range. */
  constructor(readonly last: number) {}
  next: { index: number; reader: Promise<BlockReader | undefined>; first: Promise<Buffer | undefined> | undefined } | undefined;

  /** The next slot in turn: reads are issued and consumed in order, two at most in flight. */
  slot(): Buffer {
    return this.bufs![this.turn++ % this.bufs!.length]!;
  }

  /** Closes a next block that was opened and not used; its read must land first. */
  async dropNext(): Promise<void> {
    const n = this.next;
    this.next = undefined;
    if (!n) return;
    await n.first?.catch(() => undefined);
    await (await n.reader.catch(() => undefined))?.close();
  }
}

export class RangeReader {
  readonly #fetcher: BlockFetcher;
  readonly #metrics: Metrics | undefined;
  /** Read buffers of hot streams (two per stream), kept for the next streams. */
  readonly #chunks = new ChunkPool(CHUNK, 24 * 1024 * 1024);
  /** Hot streams reading block files now: few get bigger reads, many share a bounded memory. */
  #streams = 0;

  constructor(fetcher: BlockFetcher, metrics?: Metrics) {
    this.#fetcher = fetcher;
    this.#metrics = metrics;
  }

  /**
   * Write bytes start..end (inclusive) of a node into `sink`, in verified pieces of at most a
   * chunk group from block files, or block-sized from memory or the upstream. Sequential access
   * grows a read-ahead window of whole blocks fetched in parallel. Resolves when the sink has
   * taken the last piece; rejects with the first failure (of a block, or of the sink).
   */
  async readInto(node: Node, start: number, end: number, identity: Identity, sink: BlockSink): Promise<void> {
    if (end < start) return;
    const f = this.#fetcher;
    const first = Math.floor(start / f.blockSize);
    const last = Math.floor(end / f.blockSize);
    const ring = new Ring(last);
    try {
      for (let i = first; i <= last; i++) {
        const started = f.demand(node, i, last, identity);
        const from = i === first ? start - i * f.blockSize : 0;
        const to = i === last ? end - i * f.blockSize + 1 : f.blockLength(node, i);
        await this.#block(node, i, from, to, identity, ring, started, sink);
      }
    } finally {
      await ring.dropNext();
      if (ring.bufs) {
        this.#streams--;
        for (const b of ring.bufs) this.#chunks.give(b);
      }
    }
  }

  /**
   * The same range pulled instead of pushed: each buffer is valid until the consumer asks for
   * the next one (or ends the iteration). For consumers that cannot offer a sink.
   */
  async *pieces(node: Node, start: number, end: number, identity: Identity): AsyncGenerator<Buffer> {
    let offered: { chunk: Buffer; taken: () => void; refused: (err: unknown) => void } | undefined;
    let held: typeof offered;
    let wake: (() => void) | undefined;
    let ended = false;
    let failure: unknown;
    const sink: BlockSink = {
      write: (chunk) => new Promise<void>((taken, refused) => { offered = { chunk, taken, refused }; wake?.(); }),
    };
    const run = this.readInto(node, start, end, identity, sink).then(
      () => { ended = true; wake?.(); },
      (err: unknown) => { ended = true; failure = err; wake?.(); },
    );
    try {
      for (;;) {
        if (!offered && !ended) await new Promise<void>((r) => { wake = r; });
        wake = undefined;
        if (!offered) break;
        held = offered;
        offered = undefined;
        yield held.chunk;
        held.taken();
        held = undefined;
      }
      if (failure !== undefined) throw failure as Error;
    } finally {
      // Ended early: the read stops at its next write, and has given its buffers back when we return.
      (held ?? offered)?.refused(new Error('range no longer read'));
      await run;
    }
  }

  /** Bytes from..to (exclusive) of block `index`; `started`: this read started its fetch. */
  async #block(node: Node, index: number, from: number, to: number, identity: Identity, ring: Ring, started: boolean, sink: BlockSink): Promise<void> {
    const f = this.#fetcher;
    const length = f.blockLength(node, index);
    const id = blockId(node.key, node.version, index);
    const opened = ring.next?.index === index ? ring.next : undefined;
    if (opened) {
      ring.next = undefined;
      const reader = await opened.reader;
      if (reader) return this.#fromDisk(reader, node, index, from, to, identity, ring, sink, opened.first);
    }
    const at = f.locate(node, index, id);
    if (at === 'arriving') return this.#fromArriving(f.arriving(id)!, from, to, started, sink);
    // Small blocks go through getdata, which keeps them in the memory tier.
    if (at === 'disk' && length > f.memoryMaxBlockBytes) {
      const reader = await f.blocks.openBlock(node.key, node.version, index, length);
      if (reader) return this.#fromDisk(reader, node, index, from, to, identity, ring, sink);
    }
    return this.#fromGetdata(node, index, from, to, identity, sink);
  }

  async #fromArriving(arriving: ArrivingBlock, from: number, to: number, started: boolean, sink: BlockSink): Promise<void> {
    const pool = this.#fetcher.buffers;
    if (!started) this.#metrics?.blockLookup('join');
    // The buffer written from is held until the sink is done with it.
    let held: Buffer | undefined;
    try {
      for (let pos = from; pos < to;) {
        const end = Math.min(await arriving.available(pos), to);
        const buf = arriving.buffer; // the read's own buffer may replace the sink's when it ends
        if (buf !== held) {
          pool.hold(buf);
          if (held) pool.release(held);
          held = buf;
        }
        this.#metrics?.served('upstream', end - pos);
        await sink.write(buf.subarray(pos, end));
        pos = end;
      }
    } finally {
      if (held) pool.release(held);
    }
  }

  #ringOf(ring: Ring): Buffer[] {
    if (ring.bufs) return ring.bufs;
    // A lone stream reads 2 MiB at a time (fewer reads and wake-ups: ~+20 % throughput), two
    // or three 1 MiB, up to eight 512 KiB, each into two buffers. Beyond eight, one buffer
    // each: the other streams' writes fill the time a stream waits for its read, and 16
    // streams hold 8 MiB of buffers instead of 16.
    const n = ++this.#streams;
    const g = n === 1 ? 4 : n <= 3 ? 2 : 1;
    return (ring.bufs = n > 8 ? [this.#chunks.take(g)] : [this.#chunks.take(g), this.#chunks.take(g)]);
  }

  async #fromDisk(reader: BlockReader, node: Node, index: number, from: number, to: number, identity: Identity, ring: Ring, sink: BlockSink, first?: Promise<Buffer | undefined>): Promise<void> {
    this.#metrics?.blockLookup('hit');
    // Read in groups of `g` chunks (one read each, every chunk checked). With two buffers, the
    // next group is read while this one is written out; a slot is read into again only once the
    // sink's promise for its last group resolved. The last group's turn opens the next block.
    const bufs = this.#ringOf(ring);
    const g = bufs[0]!.length / CHUNK;
    const c0 = Math.floor(from / CHUNK);
    const c1 = Math.floor((to - 1) / CHUNK);
    const pending: Array<Promise<Buffer | undefined>> = [];
    const readGroup = (c: number) => {
      if (c <= c1) pending.push(reader.chunk(c, ring.slot(), Math.min(g, c1 - c + 1)));
      else this.#openNext(node, index + 1, to === this.#fetcher.blockLength(node, index), ring);
    };
    pending.push(first ?? reader.chunk(c0, ring.slot(), Math.min(g, c1 - c0 + 1)));
    for (let k = 1; k < bufs.length; k++) readGroup(c0 + k * g);
    try {
      for (let c = c0; c <= c1; c += g) {
        const buf = await pending.shift()!;
        if (!buf) {
          // Damaged on disk (now dropped): the rest of this block comes from the upstream.
          return await this.#fromGetdata(node, index, Math.max(from, c * CHUNK), to, identity, sink);
        }
        const a = c === c0 ? from - c * CHUNK : 0;
        const b = Math.min(buf.length, to - c * CHUNK);
        this.#metrics?.served('cache', b - a);
        await sink.write(a === 0 && b === buf.length ? buf : buf.subarray(a, b));
        readGroup(c + bufs.length * g);
      }
    } finally {
      // A read still in flight (the sink failed) must land before its buffer is reused.
      await Promise.allSettled(pending);
      await reader.close();
    }
  }

  /**
   * While the last group of a block is written, open block `index` (when the range goes on
   * into it and it is a block file) and read its first group into the free slot.
   */
  #openNext(node: Node, index: number, rangeGoesOn: boolean, ring: Ring): void {
    const f = this.#fetcher;
    if (!rangeGoesOn || ring.next || index > ring.last) return;
    const length = f.blockLength(node, index);
    if (length <= f.memoryMaxBlockBytes || f.locate(node, index, blockId(node.key, node.version, index)) !== 'disk') return;
    const reader = f.blocks.openBlock(node.key, node.version, index, length);
    const g = ring.bufs![0]!.length / CHUNK;
    const slot = ring.slot();
    const first = reader.then((r) => r?.chunk(0, slot, Math.min(g, r.chunks)));
    ring.next = { index, reader, first };
  }

  async #fromGetdata(node: Node, index: number, from: number, to: number, identity: Identity, sink: BlockSink): Promise<void> {
    const pool = this.#fetcher.buffers;
    const data = await this.#fetcher.getdataPooled(node, index, identity);
    pool.hold(data);
    try {
      await sink.write(from === 0 && to === data.length ? data : data.subarray(from, to));
    } finally {
      pool.release(data);
    }
  }
}
