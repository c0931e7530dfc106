import webdavServer from 'webdav-server';
import type { v2 as V2 } from 'webdav-server';
import { isWithin, parentOf } from '../davpath.js';

const { v2 } = webdavServer;

// Dead properties and locks: protocol state that the upstream does not hold. This is the one
// source of truth: webdav-server's PROPPATCH/LOCK/UNLOCK write it through the managers handed
// out here, and our own PROPFIND, PUT, DELETE, COPY and MOVE read and move it.
// Kept in memory for now (issue 4 moves it to keyv).

export type Lock = V2.Lock;
export type PropertyBag = V2.PropertyBag;

export class DavState {
  readonly #props = new Map<string, V2.LocalPropertyManager>();
  readonly #locks = new Map<string, V2.LocalLockManager>();

  propertyManager(path: string): V2.LocalPropertyManager {
    let pm = this.#props.get(path);
    if (!pm) this.#props.set(path, (pm = new v2.LocalPropertyManager()));
    return pm;
  }

  lockManager(path: string): V2.LocalLockManager {
    let lm = this.#locks.get(path);
    if (!lm) this.#locks.set(path, (lm = new v2.LocalLockManager()));
    return lm;
  }

  deadProperties(path: string): PropertyBag | undefined {
    const pm = this.#props.get(path);
    return pm && Object.keys(pm.properties).length ? pm.properties : undefined;
  }

  /** Unexpired locks held on `path` itself. */
  locksOn(path: string): Lock[] {
    const lm = this.#locks.get(path);
    if (!lm) return [];
    lm.locks = lm.locks.filter((l) => !l.expired());
    return lm.locks;
  }

  /** Locks that cover `path`: its own, and depth-infinity locks of its ancestors. */
  locksCovering(path: string): Array<{ root: string; lock: Lock }> {
    const out: Array<{ root: string; lock: Lock }> = [];
    for (const lock of this.locksOn(path)) out.push({ root: path, lock });
    let p = path;
    while (p !== '/') {
      p = parentOf(p);
      for (const lock of this.locksOn(p)) if (lock.depth !== 0) out.push({ root: p, lock });
    }
    return out;
  }

  /** Locks on `path` or anywhere below it (a DELETE or MOVE of a tree must own them all). */
  locksWithin(path: string): Array<{ root: string; lock: Lock }> {
    const out: Array<{ root: string; lock: Lock }> = this.locksCovering(path).filter((l) => l.root !== path);
    for (const p of this.#locks.keys()) if (isWithin(p, path)) for (const lock of this.locksOn(p)) out.push({ root: p, lock });
    return out;
  }

  /** The resource is gone: its properties and locks go with it. */
  delete(path: string): void {
    for (const m of [this.#props, this.#locks]) for (const p of [...m.keys()]) if (isWithin(p, path)) m.delete(p);
  }

  /** Dead properties follow their resource; locks do not (RFC 4918 §9.9.4: a MOVE does not move locks). */
  move(from: string, to: string): void {
    this.delete(to);
    for (const p of [...this.#props.keys()]) {
      if (!isWithin(p, from)) continue;
      this.#props.set(to + p.slice(from.length), this.#props.get(p)!);
      this.#props.delete(p);
    }
    for (const p of [...this.#locks.keys()]) if (isWithin(p, from)) this.#locks.delete(p);
  }

  copy(from: string, to: string, shallow: boolean): void {
    this.delete(to);
    for (const [p, pm] of [...this.#props]) {
      if (!(shallow ? p === from : isWithin(p, from))) continue;
      const copy = new v2.LocalPropertyManager();
      // Values are plain XML trees (webdav-server elements carry methods on the prototype only).
      copy.properties = JSON.parse(JSON.stringify(pm.properties)) as PropertyBag;
      this.#props.set(to + p.slice(from.length), copy);
    }
  }
}
