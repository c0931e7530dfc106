import { isWithin } from '../davpath.js';

// Dead properties and locks: protocol state that the upstream does not hold. This is their one
// home: PROPPATCH and LOCK write here, PROPFIND (lockdiscovery, dead properties) and every write
// method (lock checks) read here, and DELETE/COPY/MOVE carry properties along.
//
// Two homes implement it: LocalDavState (localstate.ts: in memory, written through to the
// cache directory) for one gateway, and a Redis one (src/cluster/) shared by several. Every
// method may fail with SharedStateUnavailableError when the shared store cannot be reached.

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
  readonly timeoutSeconds: number;
  readonly expiresAt: number;
}

/** What PROPFIND needs of a batch of entries, read in one go and then looked up synchronously. */
export interface DavStateView {
  properties(path: string): ReadonlyMap<string, DeadProperty> | undefined;
  locksCovering(path: string): LockRecord[];
}

export interface DavState {
  /** Properties of `paths` and every lock, for a batch of PROPFIND entries. */
  view(paths: readonly string[]): Promise<DavStateView>;
  properties(path: string): Promise<ReadonlyMap<string, DeadProperty> | undefined>;
  /** Replace the whole property set of a resource (PROPPATCH applies all or nothing). */
  setProperties(path: string, props: ReadonlyMap<string, DeadProperty>): Promise<void>;
  /** Unexpired locks taken on `path` itself. */
  locksOn(path: string): Promise<LockRecord[]>;
  /** Locks that cover `path`: its own, and depth-infinity locks of its ancestors. */
  locksCovering(path: string): Promise<LockRecord[]>;
  /** Locks that cover `path` or anything below it (a tree operation must own them all). */
  locksWithin(path: string): Promise<LockRecord[]>;
  /** Unexpired locks held now, over all resources (a gauge for the dashboard). */
  activeLocks(): Promise<number>;
  /**
   * Add `lock` unless a lock held now conflicts with it (conflictOf), checked and added in one
   * step, also against other gateways sharing the state. Returns the conflicting lock, if any.
   */
  acquireLock(lock: LockRecord): Promise<LockRecord | undefined>;
  /** The lock with a new timeout, counted from now; undefined when it expired meanwhile. */
  refreshLock(lock: LockRecord, timeoutSeconds: number): Promise<LockRecord | undefined>;
  removeLock(lock: LockRecord): Promise<void>;
  /** The resource is gone: its properties and the locks on it and below go with it. */
  delete(path: string): Promise<void>;
  /** Dead properties follow their resource; locks stay behind (RFC 4918 §9.9.4) and so are dropped. */
  move(from: string, to: string): Promise<void>;
  /** A copy gets the dead properties of the source (RFC 4918 §9.8.2), never its locks. */
  copy(from: string, to: string, shallow: boolean): Promise<void>;
  close(): Promise<void>;
}

/** One resource, one key: a name upstream in NFD and its NFC spelling share properties and locks. */
export const nfc = (path: string): string => path.normalize('NFC');

export function propKey(ns: string, local: string): string {
  return `{${ns}}${local}`;
}

/** Of `locks`, those covering `path`: taken on it, or depth infinity on an ancestor. */
export function covering(locks: Iterable<LockRecord>, path: string): LockRecord[] {
  const out: LockRecord[] = [];
  for (const l of locks) if (l.root === path || (l.depth === 'infinity' && isWithin(path, l.root))) out.push(l);
  return out;
}

/** Of `locks`, those covering `path` or taken anywhere below it. */
export function within(locks: Iterable<LockRecord>, path: string): LockRecord[] {
  const out: LockRecord[] = [];
  for (const l of locks) if (isWithin(l.root, path) || (l.depth === 'infinity' && isWithin(path, l.root))) out.push(l);
  return out;
}

/**
 * A lock held now that a new `scope` lock of `depth` on `path` conflicts with: any exclusive
 * lock, and for an exclusive request any lock at all, covering the resource or (depth infinity)
 * anywhere below it. The Redis script (src/cluster/lua.ts) applies the same rules.
 */
export function conflictOf(locks: Iterable<LockRecord>, path: string, scope: LockRecord['scope'], depth: LockRecord['depth']): LockRecord | undefined {
  const existing = depth === 'infinity' ? within(locks, path) : covering(locks, path);
  return existing.find((l) => scope === 'exclusive' || l.scope === 'exclusive');
}
