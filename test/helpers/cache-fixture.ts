import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { FsUpstream } from '../../src/upstream/fs.js';
import type { Upstream } from '../../src/upstream/types.js';
import { CacheManager, type CacheOptions } from '../../src/cachemgr/cachemgr.js';
import { CountingUpstream } from './counting-upstream.js';

// Unit-test fixtures of the cache manager's modules: a real directory behind a real FsUpstream,
// with a gate in front that can hold reads or fail stats, and a counter in front of that.

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Control over the calls that pass through a gated upstream (arguments are passed on untouched). */
export class Gate {
  /** Reads that reached the upstream and have not returned yet; the most at once. */
  inflight = 0;
  maxInflight = 0;
  /** When set, every stat throws it. */
  statError: Error | undefined;
  #held: Promise<void> | undefined;
  #open: (() => void) | undefined;

  /** Reads wait (before reaching the directory) until `open`. */
  hold(): void {
    this.#held ??= new Promise((r) => { this.#open = r; });
  }

  open(): void {
    this.#open?.();
    this.#held = undefined;
  }

  wrap(inner: Upstream): Upstream {
    return new Proxy(inner, {
      get: (target, prop) => {
        const v = Reflect.get(target, prop, target) as unknown;
        if (prop === 'read') {
          return async (...args: unknown[]) => {
            this.inflight++;
            this.maxInflight = Math.max(this.maxInflight, this.inflight);
            try {
              await this.#held;
              return await (v as (...a: unknown[]) => Promise<Buffer>).apply(target, args);
            } finally {
              this.inflight--;
            }
          };
        }
        if (prop === 'stat' && this.statError) { const err = this.statError; return async () => { throw err; }; }
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }
}

export interface Fixture {
  root: string;
  cacheDir: string;
  gate: Gate;
  /** The upstream as the cache sees it: counted, in front of the gate. */
  upstream: CountingUpstream;
  close: () => Promise<void>;
}

export const defaults = (cacheDir: string): CacheOptions => ({
  dir: cacheDir, blockSize: 64 * KiB, maxBytes: 256 * MiB, highWatermark: 0.9, lowWatermark: 0.7, ttl: 60_000,
  nodeTable: 'memory', readAheadMaxBlocks: 4, maxInflightFetches: 4, memoryBytes: 4 * MiB, memoryMaxBlockBytes: 16 * KiB,
  listingEntries: 1000,
});

/** A directory with `files` (path: contents) behind a gated, counted FsUpstream. */
export async function fixture(files: Record<string, Buffer | string> = {}): Promise<Fixture> {
  const base = await mkdtemp(join(tmpdir(), 'davgate-unit-'));
  const root = join(base, 'up');
  const cacheDir = join(base, 'cache');
  await mkdir(root);
  for (const [p, data] of Object.entries(files)) {
    await mkdir(dirname(join(root, p)), { recursive: true });
    await writeFile(join(root, p), data);
  }
  const gate = new Gate();
  const upstream = new CountingUpstream(gate.wrap(await FsUpstream.open(root)));
  return { root, cacheDir, gate, upstream, close: () => rm(base, { recursive: true, force: true }) };
}

/** A cache manager over a fixture; closed (and the fixture removed) by `close`. */
export async function cacheFixture(files: Record<string, Buffer | string> = {}, opts: Partial<CacheOptions> = {}): Promise<Fixture & { cache: CacheManager }> {
  const f = await fixture(files);
  const cache = await CacheManager.open(f.upstream, { ...defaults(f.cacheDir), ...opts });
  return { ...f, cache, close: async () => { await cache.close(); await f.close(); } };
}

/** A sink that collects copies of what it is given. */
export function collector(): { chunks: Buffer[]; bytes(): Buffer; write(chunk: Buffer): Promise<void> } {
  const chunks: Buffer[] = [];
  return { chunks, bytes: () => Buffer.concat(chunks), write: async (chunk) => { chunks.push(Buffer.from(chunk)); } };
}
