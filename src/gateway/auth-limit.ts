import { LRUCache } from 'lru-cache';

// Failed Basic logins, counted per client address and per user name over a window: after
// `maxFailures` the key is refused (429 with Retry-After) until its window ends, without
// spending a bcrypt comparison on it. Bounded: the least recently failing keys are forgotten.

interface Count { failures: number; since: number }

export class FailedLogins {
  readonly #max: number;
  readonly #windowMs: number;
  readonly #counts: LRUCache<string, Count>;

  constructor(maxFailures: number, windowMs: number) {
    this.#max = maxFailures;
    this.#windowMs = windowMs;
    this.#counts = new LRUCache({ max: 100_000, ttl: windowMs });
  }

  /** Seconds until every one of `keys` may try again; 0 when none is blocked. */
  blockedFor(keys: readonly string[]): number {
    let wait = 0;
    const now = Date.now();
    for (const k of keys) {
      const c = this.#counts.get(k);
      if (c && c.failures >= this.#max) wait = Math.max(wait, Math.ceil((c.since + this.#windowMs - now) / 1000));
    }
    return wait;
  }

  failed(keys: readonly string[]): void {
    for (const k of keys) {
      const c = this.#counts.get(k);
      // The window starts with the first failure; the entry's TTL is not refreshed by later ones.
      if (c) c.failures++;
      else this.#counts.set(k, { failures: 1, since: Date.now() });
    }
  }

  /** A right password clears the failures of its user name (not those of the address). */
  succeeded(key: string): void {
    this.#counts.delete(key);
  }
}

/** The user name of a Basic Authorization header, if it has one. */
export function basicUserName(header: string | undefined): string | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const sep = decoded.indexOf(':');
  return sep > 0 ? decoded.slice(0, sep) : undefined;
}
