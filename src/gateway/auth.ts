import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config.js';
import { ConfigError } from '../errors.js';
import { FailedLogins } from './auth-limit.js';

// HTTP Basic authentication against an htpasswd file of bcrypt hashes ($2a$/$2b$/$2y$).
// bcrypt is slow on purpose (~50 ms), so a successful check is remembered for a minute
// under a digest of the credentials, never the password itself.

/** bcrypt of a random string at cost 10 (what `htpasswd -B` uses): compared against for unknown users. */
const UNKNOWN_USER_HASH = '$2b$10$JotVRV4SXwzojvvvbt4CHev8lua2cjiRL7JO299xdXptcGCge8aJa';

export interface User { readonly name: string; readonly readOnly: boolean }

/** The WWW-Authenticate challenge of every 401 the WebDAV listener sends (auth.realm). */
export function basicChallenge(realm: string): string {
  return `Basic realm="${realm}", charset="UTF-8"`;
}

export class HtpasswdAuth {
  readonly #hashes = new Map<string, string>();
  readonly #readOnly: Set<string>;
  readonly #verified = new LRUCache<string, User>({ max: 1024, ttl: 60_000 });

  constructor(file: string, readOnlyUsers: readonly string[]) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`auth.htpasswd: cannot read ${file}: ${(err as Error).message}`);
    }
    for (const [i, line] of text.split(/\r?\n/).entries()) {
      if (line.trim() === '' || line.startsWith('#')) continue;
      const sep = line.indexOf(':');
      const hash = line.slice(sep + 1).trim();
      if (sep <= 0 || !/^\$2[aby]\$\d\d\$/.test(hash)) throw new ConfigError(`auth.htpasswd: line ${i + 1} of ${file} is not "user:bcrypt-hash" (create it with htpasswd -B)`);
      this.#hashes.set(line.slice(0, sep), hash.replace(/^\$2y\$/, '$2b$'));
    }
    this.#readOnly = new Set(readOnlyUsers);
  }

  /** The user of an Authorization header that passed `check` within the last minute, at once; else undefined. */
  verified(header: string | undefined): User | undefined {
    if (!header || !/^basic /i.test(header)) return undefined;
    return this.#verified.get(createHash('sha256').update(header).digest('hex'));
  }

  /** The user for an Authorization header, or undefined when it is missing or wrong. */
  async check(header: string | undefined): Promise<User | undefined> {
    if (!header || !/^basic /i.test(header)) return undefined;
    const digest = createHash('sha256').update(header).digest('hex');
    const hit = this.#verified.get(digest);
    if (hit) return hit;
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const sep = decoded.indexOf(':');
    if (sep <= 0) return undefined;
    const name = decoded.slice(0, sep);
    const hash = this.#hashes.get(name);
    // bcryptjs loads with the first login: a gateway without auth never needs it.
    const { default: bcrypt } = await import('bcryptjs');
    // An unknown user costs one comparison too, so timing does not tell which names exist.
    const ok = await bcrypt.compare(decoded.slice(sep + 1), hash ?? UNKNOWN_USER_HASH);
    if (!hash || !ok) return undefined;
    const user = { name, readOnly: this.#readOnly.has(name) };
    this.#verified.set(digest, user);
    return user;
  }
}

/** The htpasswd users and the failed logins counted against them, shared by the auth hook and hot-read.ts. */
export interface Login { readonly auth: HtpasswdAuth; readonly failures: FailedLogins }

export function loginFor(config: Config): Login | undefined {
  if (!config.auth.htpasswd) return undefined;
  return { auth: new HtpasswdAuth(config.auth.htpasswd, config.auth.readOnlyUsers), failures: new FailedLogins(config.auth.maxFailures, config.auth.failureWindow) };
}
