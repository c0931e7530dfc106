import type { Readable } from 'node:stream';
import type { CallContext, CopyOptions, Entry, MoveOptions, Quota, ReadOptions, Upstream, WriteOptions } from '../../src/upstream/types.js';

/** Wraps a real upstream and counts what reaches it: the tests' view "at the upstream". */
export class CountingUpstream implements Upstream {
  readonly inner: Upstream;
  readonly calls = new Map<string, number>();
  /** Every read as [offset, length]. */
  readonly reads: Array<[number, number]> = [];

  /** Present exactly when the inner upstream has it, as the contract wants. */
  readonly quota?: (path: string, ctx?: CallContext) => Promise<Quota>;
  readonly setMtime?: (path: string, mtimeMs: number, ctx?: CallContext) => Promise<void>;
  readonly contentMd5?: (validator: string) => string | undefined;

  constructor(inner: Upstream) {
    this.inner = inner;
    this.preferredReadBytes = inner.preferredReadBytes;
    if (inner.quota) this.quota = (path, ctx) => { this.#hit('quota'); return inner.quota!(path, ctx); };
    if (inner.contentMd5) this.contentMd5 = (v) => inner.contentMd5!(v);
    if (inner.setMtime) this.setMtime = (path, ms, ctx) => { this.#hit('setmtime'); return inner.setMtime!(path, ms, ctx); };
  }

  get id(): string { return this.inner.id; }
  /** The inner upstream's, unless a test sets its own. */
  preferredReadBytes: number | undefined;
  /** The wrapped upstream's health, when it has one (ResilientUpstream). */
  get healthy(): boolean | undefined { return (this.inner as { healthy?: boolean }).healthy; }

  count(op: string): number { return this.calls.get(op) ?? 0; }
  reset(): void { this.calls.clear(); this.reads.length = 0; }
  #hit(op: string): void { this.calls.set(op, this.count(op) + 1); }

  stat(path: string, ctx?: CallContext): Promise<Entry> { this.#hit('stat'); return this.inner.stat(path, ctx); }
  list(path: string, ctx?: CallContext): AsyncIterable<Entry> { this.#hit('list'); return this.inner.list(path, ctx); }
  read(path: string, opts: ReadOptions, ctx?: CallContext): Promise<Buffer> {
    this.#hit('read');
    this.reads.push([opts.offset, opts.length]);
    return this.inner.read(path, opts, ctx);
  }
  write(path: string, body: Readable, opts?: WriteOptions, ctx?: CallContext): Promise<Entry> { this.#hit('write'); return this.inner.write(path, body, opts, ctx); }
  mkdir(path: string, ctx?: CallContext): Promise<void> { this.#hit('mkdir'); return this.inner.mkdir(path, ctx); }
  remove(path: string, ctx?: CallContext): Promise<void> { this.#hit('remove'); return this.inner.remove(path, ctx); }
  move(a: string, b: string, o: MoveOptions, ctx?: CallContext): Promise<void> { this.#hit('move'); return this.inner.move(a, b, o, ctx); }
  copy(a: string, b: string, o: CopyOptions, ctx?: CallContext): Promise<void> { this.#hit('copy'); return this.inner.copy(a, b, o, ctx); }
  close(): Promise<void> { return this.inner.close?.() ?? Promise.resolve(); }
}
