import picomatch from 'picomatch';
import { isWithin } from '../davpath.js';

// Cache policy per path: rules from the configuration, by path prefix ("/photos") or glob
// ("**/*.iso"), the first that matches decides. A rule may set the TTL of its records and
// listings, keep file data out of the cache altogether (`bypass`: read through every time),
// or keep out files larger than `maxFileSize`. Paths no rule matches get the defaults.

export interface CacheRule {
  /** A DAV path prefix (whole segments: "/photos" is not "/photos2") or a glob. */
  readonly path: string;
  readonly ttl?: number;
  readonly bypass?: boolean;
  readonly maxFileSize?: number;
  /** Never evicted; read into the cache at start and again after each change. */
  readonly pin?: boolean;
}

const GLOB = /[*?[\]{}!]/;

/** Where a walk for the files a rule matches starts: its prefix, or a glob's segments before the first wildcard. */
export function ruleRoot(pattern: string): string {
  const segments = pattern.replace(/^\/+/, '').split('/');
  const fixed: string[] = [];
  for (const seg of GLOB.test(pattern) ? segments.slice(0, -1) : segments) {
    if (GLOB.test(seg)) break;
    if (seg) fixed.push(seg);
  }
  return '/' + fixed.join('/');
}

function matcher(pattern: string): (path: string) => boolean {
  if (GLOB.test(pattern)) {
    const test = picomatch(pattern.replace(/^\/+/, ''), { dot: true });
    return (path) => test(path.replace(/^\/+/, ''));
  }
  const prefix = '/' + pattern.replace(/^\/+|\/+$/g, '');
  return (path) => isWithin(path, prefix);
}

export class CachePolicy {
  readonly #rules: ReadonlyArray<{ rule: CacheRule; matches: (path: string) => boolean }>;
  readonly #ttl: number;
  /** The longest TTL any path may get (what bounds the caches of records and listings). */
  readonly maxTtl: number;

  constructor(rules: readonly CacheRule[], defaultTtl: number) {
    this.#rules = rules.map((rule) => ({ rule, matches: matcher(rule.path) }));
    this.#ttl = defaultTtl;
    this.maxTtl = Math.max(defaultTtl, ...rules.map((r) => r.ttl ?? 0));
  }

  ruleFor(path: string): CacheRule | undefined {
    for (const r of this.#rules) if (r.matches(path)) return r.rule;
    return undefined;
  }

  /** How long a record or listing of `path` is fresh. */
  ttlFor(path: string): number {
    if (this.#rules.length === 0) return this.#ttl; // the hot path: no rules, no lookup
    return this.ruleFor(path)?.ttl ?? this.#ttl;
  }

  /** Pinned by a rule? */
  pinned(path: string): boolean {
    return this.#rules.length > 0 && this.ruleFor(path)?.pin === true;
  }

  /** Where the files of pin rules are found. */
  pinRoots(): string[] {
    return this.#rules.filter((r) => r.rule.pin).map((r) => ruleRoot(r.rule.path));
  }

  /** May the data of the file at `path` (`size` bytes) be kept (disk and memory tier)? */
  cacheable(path: string, size: number): boolean {
    if (this.#rules.length === 0) return true;
    const rule = this.ruleFor(path);
    return !rule?.bypass && (rule?.maxFileSize === undefined || size <= rule.maxFileSize);
  }
}
