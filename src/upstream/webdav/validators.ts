import { LRUCache } from 'lru-cache';
import type { Dispatcher } from 'undici';
import { nameOf } from '../../davpath.js';
import type { Entry } from '../types.js';
import { header } from './http.js';
import type { DavResponse } from './multistatus.js';

// Validators: the server's ETag when PROPFIND gives one (Apache), with any "W/" dropped and the
// mtime and size appended ("<etag>:<mtimeMs>:<size>"), else "lastmodified:<mtimeMs>:<size>"
// (nginx's dav-ext module reports no getetag). Apache marks the ETag of a file modified less than
// a second ago as weak and turns it strong a second later; dropping "W/" keeps the validator
// stable across that change, so the cache does not drop the blocks it has just written.
// With nginx the validator has one-second resolution: two writes of the same size within one
// second look alike (nginx's own ETag is built from the same two numbers). Rewrites made through
// this instance are still told apart: when the server reports a validator the path already had,
// a generation is appended ("<validator>:g<N>", remembered per path, bounded, per process).
// Rewrites by others within the same second, or through another gateway process, are not.

const MAX_GENERATIONS = 10_000; // paths whose same-second rewrites are remembered
const MAX_BASES = 16; // server validators remembered per path

export interface Expect {
  /** Strong form of the ETag ("W/" dropped). */
  etag?: string;
  mtimeMs?: number;
  size?: number;
}

export const stripWeak = (etag: string): string => etag.trim().replace(/^W\//i, '');

/** "<base>:g<N>" → {base, gen}; a validator without the suffix is generation 0. */
export function splitGen(v: string): { base: string; gen: number } {
  const m = /^(.*):g(\d+)$/.exec(v);
  return m?.[1] !== undefined ? { base: m[1], gen: Number(m[2]) } : { base: v, gen: 0 };
}

export function parseValidator(validator: string): Expect | null {
  const v = splitGen(validator).base;
  let m = /^("[^"]*"):(-?\d+):(\d+)$/.exec(v);
  if (m) return { etag: m[1], mtimeMs: Number(m[2]), size: Number(m[3]) };
  m = /^lastmodified:(-?\d+):(\d+)$/.exec(v);
  if (m) return { mtimeMs: Number(m[1]), size: Number(m[2]) };
  return null;
}

export function toInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\s*\d+\s*$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function toDate(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const t = Date.parse(v);
  return Number.isFinite(t) ? t : undefined;
}

/** Entry of one multistatus response, or null when it is a failed (non-2xx) response. */
export function entryOf(path: string, r: DavResponse, gens: Generations): Entry | null {
  if (r.status !== undefined ? r.status < 200 || r.status >= 300 : !r.ok) return null;
  const kind = r.collection ? 'dir' : 'file';
  const size = kind === 'dir' ? 0 : toInt(r.props.get('getcontentlength')) ?? 0;
  const mtimeMs = toDate(r.props.get('getlastmodified')) ?? 0;
  const birthtimeMs = toDate(r.props.get('creationdate')) ?? mtimeMs;
  const etag = r.props.get('getetag');
  const strong = etag ? stripWeak(etag) : '';
  const base = /^"[^"]*"$/.test(strong) ? `${strong}:${mtimeMs}:${size}` : `lastmodified:${mtimeMs}:${size}`;
  return { name: nameOf(path), path, kind, size, mtimeMs, birthtimeMs, validator: gens.withGen(path, base) };
}

/** Does a GET response describe the version the validator names? */
export function sameVersion(expect: Expect, headers: Dispatcher.ResponseData['headers'], total: number | undefined): boolean {
  if (expect.size !== undefined && total !== undefined && total !== expect.size) return false;
  if (expect.etag) {
    const etag = header(headers, 'etag');
    return etag === undefined || stripWeak(etag) === expect.etag;
  }
  const lm = toDate(header(headers, 'last-modified'));
  return lm === undefined || expect.mtimeMs === undefined || lm === expect.mtimeMs;
}

/** What one path remembers, oldest first: the server's validator and its generation. */
export type Remembered = ReadonlyArray<readonly [base: string, gen: number]>;

/**
 * Rewrites through this instance that the server's validator cannot tell apart (nginx: same
 * size within the same second): path → (server's validator → how many times content was
 * replaced under it). Such entries carry "<validator>:g<N>". Bounded; per process.
 */
export class Generations {
  // Least recently written paths go first. Per path a plain array of the last few validators:
  // an LRUCache each would cost ~2 KB per path against ~0.2 KB.
  readonly #gens = new LRUCache<string, Remembered>({ max: MAX_GENERATIONS });

  /** The generation remembered for the server's validator `base` at `path`, if any. */
  of(path: string, base: string): number | undefined {
    return this.#gens.peek(path)?.find(([b]) => b === base)?.[1];
  }

  has(path: string): boolean {
    return this.#gens.has(path);
  }

  /** Forget `path`, returning what was remembered for it (a moved file carries it along). */
  take(path: string): Remembered | undefined {
    const carried = this.#gens.peek(path);
    this.#gens.delete(path);
    return carried;
  }

  /** The server's validator, with the generation suffix when a same-second rewrite is remembered. */
  withGen(path: string, base: string): string {
    const gen = this.of(path, base);
    return gen ? `${base}:g${gen}` : base;
  }

  /**
   * After this instance replaced the content at `path` (PUT, MOVE or COPY onto it): when the
   * server reports a validator this path already had (`previous`, or one remembered), count one
   * more generation, so that the cache never takes the new content for an old one.
   * `now` is the entry the server reports for `path` after the change.
   */
  replaced(path: string, previous: Entry | null, now: Entry): Entry {
    const base = splitGen(now.validator).base;
    const prev = previous ? splitGen(previous.validator) : undefined;
    let gen = this.of(path, base) ?? -1;
    if (prev && prev.base === base) gen = Math.max(gen, prev.gen);
    gen += 1;
    this.remember(path, base, gen);
    return gen > 0 ? { ...now, validator: `${base}:g${gen}` } : now;
  }

  /** Remember `gen` for `base` at `path`: the newest of its validators, the path the most recently used. */
  remember(path: string, base: string, gen: number): void {
    const kept = (this.#gens.peek(path) ?? []).filter(([b]) => b !== base);
    this.#gens.set(path, [...kept.slice(-(MAX_BASES - 1)), [base, gen]]);
  }
}
