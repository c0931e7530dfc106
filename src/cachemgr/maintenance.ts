import pLimit from 'p-limit';
import { DavgateError, NotFoundError } from '../errors.js';
import { blockId, type BlockStore } from './blockstore.js';
import type { CacheManager } from './cachemgr.js';
import type { Node } from './nodetable.js';
import { SHARED, type Identity } from './identity.js';
import type { NodeRecords } from './nodes.js';
import type { BlockFetcher } from './fetcher.js';
import type { BlockSink } from './range-reader.js';

// The work behind `davgate cache stats|warm|purge` and admin invalidation: run inside the
// gateway (over the admin listener) when it is running, or by the CLI on a stopped cache
// directory. Also the residency of a range, for the request log.

/**
 * Which of the blocks covering start..end (inclusive) are cached now: all (hit), some
 * (partial) or none (miss). A block on its way from the upstream is not cached yet.
 */
export function residency(fetcher: BlockFetcher, node: Node, start: number, end: number): 'hit' | 'partial' | 'miss' {
  if (end < start) return 'hit';
  let cached = 0;
  const first = Math.floor(start / fetcher.blockSize);
  const last = Math.floor(end / fetcher.blockSize);
  for (let i = first; i <= last; i++) if (held(fetcher, node, i)) cached++;
  return cached === last - first + 1 ? 'hit' : cached === 0 ? 'miss' : 'partial';
}

/** Bytes of `node` held now: in memory, being installed, or in a block file. */
export function cachedBytes(fetcher: BlockFetcher, node: Node): number {
  let bytes = 0;
  const blocks = Math.ceil(node.size / fetcher.blockSize);
  for (let i = 0; i < blocks; i++) if (held(fetcher, node, i)) bytes += fetcher.blockLength(node, i);
  return bytes;
}

/** Block `index` of `node` is here (in memory, being installed, or on disk), not on its way. */
function held(fetcher: BlockFetcher, node: Node, index: number): boolean {
  const at = fetcher.locate(node, index, blockId(node.key, node.version, index));
  return at === 'memory' || at === 'installing' || at === 'disk';
}

/** Admin invalidation: the next access to anything under `prefix` goes upstream. */
export async function invalidate(nodes: NodeRecords, fetcher: BlockFetcher, prefix: string): Promise<number> {
  const keys = await nodes.invalidate(prefix);
  for (const k of keys) fetcher.readAhead.forget(k);
  return keys.length;
}

/**
 * Drop the cached blocks and records of `path` and everything under it (`cache purge PATH`).
 * A tree is walked upstream, since block directories are named by digests. Returns the
 * number of nodes whose blocks were dropped.
 */
export async function purge(nodes: NodeRecords, fetcher: BlockFetcher, path: string, identity: Identity): Promise<number> {
  const upstream = nodes.upstream;
  let dropped = 0;
  const drop = async (p: string): Promise<void> => {
    const key = nodes.keyOf(p, identity);
    if (fetcher.blocks.hasKey(key)) dropped++;
    await nodes.drop(key);
  };
  const walk = async (p: string): Promise<void> => {
    await drop(p);
    try {
      for await (const e of upstream.list(p, identity)) {
        if (e.kind === 'dir') await walk(e.path);
        else await drop(e.path);
      }
    } catch (err) {
      if (!(err instanceof NotFoundError) && !(err instanceof DavgateError && err.code === 'DAVGATE_NOT_A_DIRECTORY')) throw err;
    }
  };
  let kind: string | undefined;
  try {
    kind = (await upstream.stat(path, identity)).kind;
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
  }
  if (kind === 'dir') await walk(path);
  else await drop(path);
  for (const node of nodes.table.under(path)) await drop(node.path);
  await invalidate(nodes, fetcher, path);
  return dropped;
}

export interface BlockStats {
  dir: string;
  bytes: number;
  limitBytes: number;
  /** bytes / limitBytes. */
  fill: number;
  blocks: number;
  /** When the least recently used block was last read or installed (ISO 8601), null when empty. */
  oldestBlockUsedAt: string | null;
}

export interface CacheStats extends BlockStats {
  /** Whether these figures come from a running gateway (hit ratios and nodes exist only there). */
  running: boolean;
  /** Node records in memory; null for a stopped cache. */
  nodes: number | null;
  /** Since the gateway started: block lookups that hit, and bytes served from the cache. */
  blockHitRatio: number | null;
  byteHitRatio: number | null;
}

export function blockStats(store: BlockStore): BlockStats {
  const oldest = store.list()[0];
  return {
    dir: store.root,
    bytes: store.bytes,
    limitBytes: store.maxBytes,
    fill: store.maxBytes ? store.bytes / store.maxBytes : 0,
    blocks: store.count,
    oldestBlockUsedAt: oldest ? new Date(oldest.lastUsed).toISOString() : null,
  };
}

export interface WarmProgress {
  files: number;
  totalBytes: number;
  doneBytes: number;
  failed: Array<{ path: string; error: string }>;
}

export interface WarmOptions {
  /** Files read at once. */
  concurrency: number;
  onStart?(files: number, totalBytes: number): void;
  onProgress?(doneBytes: number, totalBytes: number): void;
  /** Only the files this accepts (asked once per file and walk). */
  select?(file: Node): boolean;
}

/** Files at or under a node, depth first, streamed (a tree is never held in memory). */
export async function* filesUnder(cache: CacheManager, node: Node): AsyncGenerator<Node> {
  if (node.kind !== 'dir') { yield node; return; }
  for await (const child of cache.list(node.path)) yield* filesUnder(cache, child);
}

/**
 * Read a file or a tree into the cache. Two walks: the first only adds up the sizes (for the
 * progress bar), the second reads, `concurrency` files at a time. A file that fails (gone,
 * upstream error) is reported and the rest goes on.
 */
export async function warm(cache: CacheManager, path: string, opts: WarmOptions): Promise<WarmProgress> {
  const root = await cache.getnode(path);
  const progress: WarmProgress = { files: 0, totalBytes: 0, doneBytes: 0, failed: [] };
  const selected = (f: Node) => !opts.select || opts.select(f);
  for await (const f of filesUnder(cache, root)) if (selected(f)) { progress.files++; progress.totalBytes += f.size; }
  opts.onStart?.(progress.files, progress.totalBytes);
  const limit = pLimit(opts.concurrency);
  const running = new Set<Promise<void>>();
  for await (const f of filesUnder(cache, root)) {
    if (!selected(f)) continue;
    const job: Promise<void> = limit(async () => {
      let read = 0;
      const count: BlockSink = {
        write: async (buf) => {
          read += buf.length;
          progress.doneBytes += buf.length;
          opts.onProgress?.(progress.doneBytes, progress.totalBytes);
        },
      };
      try {
        await cache.readRangeInto(f, 0, f.size - 1, SHARED, count);
      } catch (err) {
        // The file's bytes will not come: count them as done so the bar still ends.
        progress.doneBytes += Math.max(0, f.size - read);
        progress.failed.push({ path: f.path, error: (err as Error).message });
      }
    }).finally(() => running.delete(job));
    running.add(job);
    // A bounded queue: the walk waits while enough files are queued.
    if (running.size >= 2 * opts.concurrency) await Promise.race(running);
  }
  await Promise.all(running);
  await cache.flush(); // the last blocks read are on the cache disk before we say so
  return progress;
}

/** What this gateway holds of a file or a tree (`cache stats PATH`). */
export interface CacheUsage {
  path: string;
  kind: 'file' | 'dir';
  files: number;
  bytes: number;
  /** Bytes of those files in the cache now (memory or disk). */
  cachedBytes: number;
  /** Files held whole. */
  cachedFiles: number;
}

export async function cacheUsage(cache: CacheManager, path: string): Promise<CacheUsage> {
  const root = await cache.getnode(path);
  const usage: CacheUsage = { path: root.path, kind: root.kind, files: 0, bytes: 0, cachedBytes: 0, cachedFiles: 0 };
  for await (const f of filesUnder(cache, root)) {
    const cached = cache.cachedBytes(f);
    usage.files++;
    usage.bytes += f.size;
    usage.cachedBytes += cached;
    if (cached >= f.size) usage.cachedFiles++;
  }
  return usage;
}
