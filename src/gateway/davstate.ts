import { join } from 'node:path';
import type Keyv from 'keyv';
import { openKeyv } from '../cachemgr/kvstore.js';
import { isWithin, parentOf } from '../davpath.js';

// Dead properties and locks: protocol state that the upstream does not hold. This is their one
// home: PROPPATCH and LOCK write here, PROPFIND (lockdiscovery, dead properties) and every write
// method (lock checks) read here, and DELETE/COPY/MOVE carry properties along.
//
// The working set is in memory (read on every PROPFIND entry, so it must be synchronous);
// every change is written through to keyv, and the whole set is loaded back at start-up, so
// with the sqlite store properties and locks survive a restart.

export interface DeadProperty {
  readonly ns: string;
  readonly local: string;
  /** The property's content, serialised so that it means the same in any context (xml.ts innerXml). */
  readonly xml: string;
  /** xml:lang in scope where it was set (RFC 4918 §4.3: kept with the value). */
  readonly lang?: string;
}

export interface LockRecord {
  /** The lock token, e.g. "urn:uuid:...". */
  readonly token: string;
  /** The canonical path the lock was taken on. */
  readonly root: string;
  readonly scope: 'exclusive' | 'shared';
  readonly depth: '0' | 'infinity';
  /** The content of <D:owner>, serialised XML. */
  readonly owner: string;
  /** Who took it (the authenticated user, or ""). */
  readonly principal: string;
  timeoutSeconds: number;
  expiresAt: number;
}

/** One resource, one key: a name upstream in NFD and its NFC spelling share properties and locks. */
const nfc = (path: string): string => path.normalize('NFC');

export function propKey(ns: string, local: string): string {
  return `{${ns}}${local}`;
}

type Stored = { kind: 'props'; path: string; props: DeadProperty[] } | { kind: 'locks'; path: string; locks: LockRecord[] };

export class DavState {
  readonly #props = new Map<string, Map<string, DeadProperty>>();
  readonly #locks = new Map<string, LockRecord[]>();
  readonly #store: Keyv<Stored>;

  private constructor(store: Keyv<Stored>) {
    this.#store = store;
  }

  static async open(kind: 'memory' | 'sqlite', dir: string): Promise<DavState> {
    const store = await openKeyv<Stored>(kind, join(dir, 'davstate.sqlite'), 'davstate', 'dav');
    const state = new DavState(store);
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

  // ---- dead properties

  properties(path: string): ReadonlyMap<string, DeadProperty> | undefined {
    if (this.#props.size === 0) return undefined; // the common case, on every PROPFIND entry
    return this.#props.get(nfc(path));
  }

  /** Replace the whole property set of a resource (PROPPATCH applies all or nothing). */
  async setProperties(path: string, props: Map<string, DeadProperty>): Promise<void> {
    path = nfc(path);
    this.#props.set(path, props);
    await this.#persistProps(path);
  }

  // ---- locks

  /** Unexpired locks taken on `path` itself. */
  locksOn(path: string): LockRecord[] {
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

  /** Locks that cover `path`: its own, and depth-infinity locks of its ancestors. */
  locksCovering(path: string): LockRecord[] {
    if (this.#locks.size === 0) return [];
    path = nfc(path);
    const out = [...this.locksOn(path)];
    let p = path;
    while (p !== '/') {
      p = parentOf(p);
      for (const lock of this.locksOn(p)) if (lock.depth === 'infinity') out.push(lock);
    }
    return out;
  }

  /** Locks that cover `path` or anything below it (a tree operation must own them all). */
  locksWithin(path: string): LockRecord[] {
    path = nfc(path);
    const out = this.locksCovering(path);
    for (const p of this.#locks.keys()) if (p !== path && isWithin(p, path)) out.push(...this.locksOn(p));
    return out;
  }

  /** Unexpired locks held now, over all resources (a gauge for the dashboard). */
  activeLocks(): number {
    const now = Date.now();
    let n = 0;
    for (const l of this.#locks.values()) for (const x of l) if (x.expiresAt > now) n++;
    return n;
  }

  async addLock(lock: LockRecord): Promise<void> {
    if (lock.root !== nfc(lock.root)) lock = { ...lock, root: nfc(lock.root) };
    this.#locks.set(lock.root, [...this.locksOn(lock.root), lock]);
    await this.#persistLocks(lock.root);
  }

  async refreshLock(lock: LockRecord, timeoutSeconds: number): Promise<void> {
    lock.timeoutSeconds = timeoutSeconds;
    lock.expiresAt = Date.now() + timeoutSeconds * 1000;
    await this.#persistLocks(lock.root);
  }

  async removeLock(lock: LockRecord): Promise<void> {
    this.#locks.set(lock.root, this.locksOn(lock.root).filter((l) => l.token !== lock.token));
    await this.#persistLocks(lock.root);
  }

  // ---- namespace changes

  #pathsWithin(m: Map<string, unknown>, path: string, shallow = false): string[] {
    return [...m.keys()].filter((p) => (shallow ? p === path : isWithin(p, path)));
  }

  /** The resource is gone: its properties and the locks on it and below go with it. */
  async delete(path: string): Promise<void> {
    path = nfc(path);
    for (const p of this.#pathsWithin(this.#props, path)) { this.#props.delete(p); await this.#persistProps(p); }
    for (const p of this.#pathsWithin(this.#locks, path)) { this.#locks.delete(p); await this.#persistLocks(p); }
  }

  /** Dead properties follow their resource; locks stay behind (RFC 4918 §9.9.4) and so are dropped. */
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

  /** A copy gets the dead properties of the source (RFC 4918 §9.8.2), never its locks. */
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
