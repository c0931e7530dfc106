import pLimit from 'p-limit';
import type { BlockStore } from './blockstore.js';
import type { CacheManager, Node } from './cachemgr.js';

// The work behind `davgate cache stats|warm`: run inside the gateway (over the admin
// listener) when it is running, or by the CLI on a stopped cache directory.

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
}

/** Files at or under a node, depth first, streamed (a tree is never held in memory). */
async function* filesUnder(cache: CacheManager, node: Node): AsyncGenerator<Node> {
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
  for await (const f of filesUnder(cache, root)) { progress.files++; progress.totalBytes += f.size; }
  opts.onStart?.(progress.files, progress.totalBytes);
  const limit = pLimit(opts.concurrency);
  const running = new Set<Promise<void>>();
  for await (const f of filesUnder(cache, root)) {
    const job: Promise<void> = limit(async () => {
      let read = 0;
      try {
        for await (const buf of cache.readRange(f, 0, f.size - 1)) {
          read += buf.length;
          progress.doneBytes += buf.length;
          opts.onProgress?.(progress.doneBytes, progress.totalBytes);
        }
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
