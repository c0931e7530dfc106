import { join } from 'node:path';
import type Keyv from 'keyv';
import { openKeyv } from '../cachemgr/kvstore.js';
import { isWithin, parentOf } from '../davpath.js';
import { conflictOf, nfc, propKey, type DavState, type DavStateView, type DeadProperty, type LockRecord } from './davstate.js';

// The protocol state of a gateway on its own. The working set is in memory; every change is
// written through to keyv, and the whole set is loaded back at start-up, so with the sqlite
// store properties and locks survive a restart.

type Stored = { kind: 'props'; path: string; props: DeadProperty[] } | { kind: 'locks'; path: string; locks: LockRecord[] };

export class LocalDavState implements DavState {
  readonly #props = new Map<string, ReadonlyMap<string, DeadProperty>>();
  readonly #locks = new Map<string, LockRecord[]>();
  readonly #store: Keyv<Stored>;

  private constructor(store: Keyv<Stored>) {
    this.#store = store;
  }

  static async open(kind: 'memory' | 'sqlite', dir: string): Promise<LocalDavState> {
    const store = await openKeyv<Stored>(kind, join(dir, 'davstate.sqlite'), 'davstate', 'dav');
    const state = new LocalDavState(store);
    if (kind === 'sqlite' && store.iterator) {
      for await (const [, value] of store.iterator(undefined)) {
        const v = value as Stored | undefined;
        if (v?.kind === 'props') state.#props.set(v.path, new Map(v.props.map((p) => [propKey(p.ns, p.local), p])));
        else if (v?.kind === 'locks') state.#locks.set(v.path, v.locks);
      }
    }
    return state;
  }

  async close(): Promise<void> {
    await this.#store.disconnect().catch(() => {});
  }

  async #persistProps(path: string): Promise<void> {
    const m = this.#props.get(path);
    if (m && m.size) await this.#store.set('p' + path, { kind: 'props', path, props: [...m.values()] });
    else { this.#props.delete(path); await this.#store.delete('p' + path); }
  }

  async #persistLocks(path: string): Promise<void> {
    const l = this.#locks.get(path);
    if (l && l.length) await this.#store.set('l' + path, { kind: 'locks', path, locks: l });
    else { this.#locks.delete(path); await this.#store.delete('l' + path); }
  }

  // ---- synchronous reads (the working set is here)

  #properties(path: string): ReadonlyMap<string, DeadProperty> | undefined {
    if (this.#props.size === 0) return undefined; // the common case, on every PROPFIND entry
    return this.#props.get(nfc(path));
  }

  #locksOn(path: string): LockRecord[] {
    path = nfc(path);
    const l = this.#locks.get(path);
    if (!l) return [];
    const now = Date.now();
    if (l.some((x) => x.expiresAt <= now)) {
      const live = l.filter((x) => x.expiresAt > now);
      this.#locks.set(path, live);
      void this.#persistLocks(path).catch(() => {});
      return live;
    }
    return l;
  }

  #locksCovering(path: string): LockRecord[] {
    if (this.#locks.size === 0) return [];
    path = nfc(path);
    const out = [...this.#locksOn(path)];
    let p = path;
    while (p !== '/') {
      p = parentOf(p);
      for (const lock of this.#locksOn(p)) if (lock.depth === 'infinity') out.push(lock);
    }
    return out;
  }

  #locksWithin(path: string): LockRecord[] {
    path = nfc(path);
    const out = this.#locksCovering(path);
    for (const p of this.#locks.keys()) if (p !== path && isWithin(p, path)) out.push(...this.#locksOn(p));
    return out;
  }

  async view(): Promise<DavStateView> {
    return { properties: (p) => this.#properties(p), locksCovering: (p) => this.#locksCovering(p) };
  }

  async properties(path: string): Promise<ReadonlyMap<string, DeadProperty> | undefined> { return this.#properties(path); }
  async locksOn(path: string): Promise<LockRecord[]> { return this.#locksOn(path); }
  async locksCovering(path: string): Promise<LockRecord[]> { return this.#locksCovering(path); }
  async locksWithin(path: string): Promise<LockRecord[]> { return this.#locksWithin(path); }

  async setProperties(path: string, props: ReadonlyMap<string, DeadProperty>): Promise<void> {
    path = nfc(path);
    this.#props.set(path, props);
    await this.#persistProps(path);
  }

  // ---- locks

  async activeLocks(): Promise<number> {
    const now = Date.now();
    let n = 0;
    for (const l of this.#locks.values()) for (const x of l) if (x.expiresAt > now) n++;
    return n;
  }

  async acquireLock(lock: LockRecord): Promise<LockRecord | undefined> {
    if (lock.root !== nfc(lock.root)) lock = { ...lock, root: nfc(lock.root) };
    // Checked and added without an await between: one event loop turn is atomic.
    const conflict = conflictOf(this.#locksWithin(lock.root), lock.root, lock.scope, lock.depth);
    if (conflict) return conflict;
    this.#locks.set(lock.root, [...this.#locksOn(lock.root), lock]);
    await this.#persistLocks(lock.root);
    return undefined;
  }

  async refreshLock(lock: LockRecord, timeoutSeconds: number): Promise<LockRecord | undefined> {
    const list = this.#locksOn(lock.root);
    const i = list.findIndex((l) => l.token === lock.token);
    if (i === -1) return undefined;
    const next = { ...lock, timeoutSeconds, expiresAt: Date.now() + timeoutSeconds * 1000 };
    this.#locks.set(lock.root, list.map((l, j) => (j === i ? next : l)));
    await this.#persistLocks(lock.root);
    return next;
  }

  async removeLock(lock: LockRecord): Promise<void> {
    this.#locks.set(lock.root, this.#locksOn(lock.root).filter((l) => l.token !== lock.token));
    await this.#persistLocks(lock.root);
  }

  // ---- namespace changes

  #pathsWithin(m: Map<string, unknown>, path: string, shallow = false): string[] {
    return [...m.keys()].filter((p) => (shallow ? p === path : isWithin(p, path)));
  }

  async delete(path: string): Promise<void> {
    path = nfc(path);
    for (const p of this.#pathsWithin(this.#props, path)) { this.#props.delete(p); await this.#persistProps(p); }
    for (const p of this.#pathsWithin(this.#locks, path)) { this.#locks.delete(p); await this.#persistLocks(p); }
  }

  async move(from: string, to: string): Promise<void> {
    from = nfc(from);
    to = nfc(to);
    await this.delete(to);
    for (const p of this.#pathsWithin(this.#props, from)) {
      const target = to + p.slice(from.length);
      this.#props.set(target, this.#props.get(p)!);
      this.#props.delete(p);
      await this.#persistProps(p);
      await this.#persistProps(target);
    }
    for (const p of this.#pathsWithin(this.#locks, from)) { this.#locks.delete(p); await this.#persistLocks(p); }
  }

  async copy(from: string, to: string, shallow: boolean): Promise<void> {
    from = nfc(from);
    to = nfc(to);
    await this.delete(to);
    for (const p of this.#pathsWithin(this.#props, from, shallow)) {
      const target = to + p.slice(from.length);
      this.#props.set(target, new Map(this.#props.get(p)));
      await this.#persistProps(target);
    }
  }
}

