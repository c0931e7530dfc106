import { isWithin } from '../davpath.js';
import { covering, nfc, within, type DavState, type DavStateView, type DeadProperty, type LockRecord } from '../gateway/davstate.js';
import type { RedisClient, RedisLink } from './redis.js';
import { ACQUIRE, DROP_WITHIN, LIST, REFRESH } from './lua.js';

// Locks and dead properties in Redis, shared by every gateway of the namespace.
// Keys (under the configured prefix):
//   locks              hash token -> lock record (JSON); lua.ts keeps it and checks conflicts
//   lock:<token>       the lock's marker, expiring with the lock
//   props:<path>       hash propKey -> dead property (JSON), one per resource
//   propidx            set of the paths that have dead properties (for tree operations)
// Nothing is cached here: every read asks Redis, so a change by another gateway is seen at once.

type PropMap = ReadonlyMap<string, DeadProperty>;

export class RedisDavState implements DavState {
  readonly #link: RedisLink;
  readonly #locks: string;
  readonly #markers: string;
  readonly #propidx: string;
  readonly #onViewError: (err: unknown) => void;

  /** `onViewError`: PROPFIND is served without shared state while Redis is away; told so. */
  constructor(link: RedisLink, onViewError: (err: unknown) => void = () => {}) {
    this.#link = link;
    this.#locks = link.prefix + 'locks';
    this.#markers = link.prefix + 'lock:';
    this.#propidx = link.prefix + 'propidx';
    this.#onViewError = onViewError;
  }

  #props(path: string): string {
    return this.#link.prefix + 'props:' + path;
  }

  async #all(): Promise<LockRecord[]> {
    const list = await this.#link.run((c) => c.eval(LIST, { keys: [this.#locks], arguments: [this.#markers] })) as string[];
    const now = Date.now();
    // A marker outliving its record's expiry by a clock tick counts as expired, as locally.
    return list.map((s) => JSON.parse(s) as LockRecord).filter((l) => l.expiresAt > now);
  }

  static #decode(h: Record<string, string>): PropMap | undefined {
    const entries = Object.entries(h);
    if (entries.length === 0) return undefined;
    return new Map(entries.map(([k, v]) => [k, JSON.parse(v) as DeadProperty]));
  }

  async view(paths: readonly string[]): Promise<DavStateView> {
    try {
      const [locks, props] = await Promise.all([
        this.#all(),
        // Issued in one tick: the client sends them as one pipeline.
        this.#link.run((c) => Promise.all(paths.map((p) => c.hGetAll(this.#props(nfc(p)))))),
      ]);
      const byPath = new Map(paths.map((p, i) => [nfc(p), RedisDavState.#decode(props[i]!)]));
      return { properties: (p) => byPath.get(nfc(p)), locksCovering: (p) => covering(locks, nfc(p)) };
    } catch (err) {
      // Reads go on while Redis is away, as a gateway on its own would answer them: without
      // dead properties and locks (every change is refused meanwhile, so none is missed).
      this.#onViewError(err);
      return { properties: () => undefined, locksCovering: () => [] };
    }
  }

  async properties(path: string): Promise<PropMap | undefined> {
    return RedisDavState.#decode(await this.#link.run((c) => c.hGetAll(this.#props(nfc(path)))));
  }

  async setProperties(path: string, props: PropMap): Promise<void> {
    path = nfc(path);
    await this.#link.run(async (c) => {
      const m = c.multi().del(this.#props(path));
      if (props.size) {
        m.hSet(this.#props(path), Object.fromEntries([...props].map(([k, v]) => [k, JSON.stringify(v)])));
        m.sAdd(this.#propidx, path);
      } else {
        m.sRem(this.#propidx, path);
      }
      await m.exec();
    });
  }

  async locksOn(path: string): Promise<LockRecord[]> {
    path = nfc(path);
    return (await this.#all()).filter((l) => l.root === path);
  }

  async locksCovering(path: string): Promise<LockRecord[]> {
    return covering(await this.#all(), nfc(path));
  }

  async locksWithin(path: string): Promise<LockRecord[]> {
    return within(await this.#all(), nfc(path));
  }

  async activeLocks(): Promise<number> {
    return (await this.#all()).length;
  }

  async acquireLock(lock: LockRecord): Promise<LockRecord | undefined> {
    if (lock.root !== nfc(lock.root)) lock = { ...lock, root: nfc(lock.root) };
    const ttl = Math.max(1, lock.expiresAt - Date.now());
    const args = [this.#markers, lock.token, JSON.stringify(lock), String(ttl), lock.root, lock.scope, lock.depth];
    const conflict = await this.#link.run((c) => c.eval(ACQUIRE, { keys: [this.#locks], arguments: args })) as string | null;
    return conflict === null ? undefined : JSON.parse(conflict) as LockRecord;
  }

  async refreshLock(lock: LockRecord, timeoutSeconds: number): Promise<LockRecord | undefined> {
    const next: LockRecord = { ...lock, timeoutSeconds, expiresAt: Date.now() + timeoutSeconds * 1000 };
    const args = [this.#markers, lock.token, JSON.stringify(next), String(timeoutSeconds * 1000)];
    const ok = await this.#link.run((c) => c.eval(REFRESH, { keys: [this.#locks], arguments: args }));
    return ok === 1 ? next : undefined;
  }

  async removeLock(lock: LockRecord): Promise<void> {
    await this.#link.run((c) => c.multi().del(this.#markers + lock.token).hDel(this.#locks, lock.token).exec());
  }

  async #dropLocksWithin(path: string): Promise<void> {
    await this.#link.run((c) => c.eval(DROP_WITHIN, { keys: [this.#locks], arguments: [this.#markers, path] }));
  }

  /** Paths with dead properties at or below `path` (or exactly it, `shallow`). */
  async #propPathsWithin(c: RedisClient, path: string, shallow = false): Promise<string[]> {
    if (shallow) return (await c.sIsMember(this.#propidx, path)) ? [path] : [];
    return (await c.sMembers(this.#propidx)).filter((p) => isWithin(p, path));
  }

  async #deleteProps(path: string): Promise<void> {
    await this.#link.run(async (c) => {
      const paths = await this.#propPathsWithin(c, path);
      if (paths.length === 0) return;
      await c.multi().del(paths.map((p) => this.#props(p))).sRem(this.#propidx, paths).exec();
    });
  }

  async delete(path: string): Promise<void> {
    path = nfc(path);
    await this.#deleteProps(path);
    await this.#dropLocksWithin(path);
  }

  async move(from: string, to: string): Promise<void> {
    from = nfc(from);
    to = nfc(to);
    await this.delete(to);
    await this.#link.run(async (c) => {
      const paths = await this.#propPathsWithin(c, from);
      if (paths.length === 0) return;
      const m = c.multi();
      for (const p of paths) {
        const target = to + p.slice(from.length);
        m.rename(this.#props(p), this.#props(target)).sRem(this.#propidx, p).sAdd(this.#propidx, target);
      }
      await m.exec();
    });
    await this.#dropLocksWithin(from);
  }

  async copy(from: string, to: string, shallow: boolean): Promise<void> {
    from = nfc(from);
    to = nfc(to);
    await this.delete(to);
    await this.#link.run(async (c) => {
      const paths = await this.#propPathsWithin(c, from, shallow);
      const values = await Promise.all(paths.map((p) => c.hGetAll(this.#props(p))));
      const m = c.multi();
      paths.forEach((p, i) => {
        if (Object.keys(values[i]!).length === 0) return;
        const target = to + p.slice(from.length);
        m.hSet(this.#props(target), values[i]!).sAdd(this.#propidx, target);
      });
      await m.exec();
    });
  }

  async close(): Promise<void> {}
}
