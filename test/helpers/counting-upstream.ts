import type { Readable } from 'node:stream';
import type { Entry, Upstream } from '../../src/upstream/types.js';

/** Wraps a real upstream and counts what reaches it: the tests' view "at the upstream". */
export class CountingUpstream implements Upstream {
  readonly inner: Upstream;
  readonly calls = new Map<string, number>();
  /** Every read as [offset, length]. */
  readonly reads: Array<[number, number]> = [];

  constructor(inner: Upstream) {
    this.inner = inner;
  }

  get id(): string { return this.inner.id; }
  get capabilities() { return this.inner.capabilities; }

  count(op: string): number { return this.calls.get(op) ?? 0; }
  reset(): void { this.calls.clear(); this.reads.length = 0; }
  #hit(op: string): void { this.calls.set(op, this.count(op) + 1); }

  stat(path: string): Promise<Entry> { this.#hit('stat'); return this.inner.stat(path); }
  list(path: string): AsyncIterable<Entry> { this.#hit('list'); return this.inner.list(path); }
  read(path: string, offset: number, length: number, v?: string): Promise<Buffer> {
    this.#hit('read');
    this.reads.push([offset, length]);
    return this.inner.read(path, offset, length, v);
  }
  write(path: string, body: Readable, size?: number): Promise<Entry> { this.#hit('write'); return this.inner.write(path, body, size); }
  mkdir(path: string): Promise<void> { this.#hit('mkdir'); return this.inner.mkdir(path); }
  remove(path: string): Promise<void> { this.#hit('remove'); return this.inner.remove(path); }
  move(a: string, b: string, o: boolean): Promise<void> { this.#hit('move'); return this.inner.move(a, b, o); }
  copy(a: string, b: string, o: boolean, s?: boolean): Promise<void> { this.#hit('copy'); return this.inner.copy(a, b, o, s); }
  quota(path: string) { this.#hit('quota'); return this.inner.quota!(path); }
  setMtime(path: string, ms: number) { this.#hit('setmtime'); return this.inner.setMtime!(path, ms); }
}
