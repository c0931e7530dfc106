import { ConfigError } from '../../errors.js';
import { canonicalSegments, encodeHref } from '../../davpath.js';

// Paths: the base URL may carry a path prefix ("http://host/dav/"); canonical "/a b" is sent
// as "<prefix>/a%20b". Collections are addressed with a trailing slash where a method needs it
// (nginx refuses MKCOL, DELETE, MOVE and COPY of a collection without one).

export function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** Refuse anything that is not a canonical path (the backend's own confinement). */
export function checkPath(path: string): void {
  canonicalSegments(path);
}

/**
 * The configured base URL, cleaned, and the credentials it carried. Those are returned, never
 * kept here: the caller turns them into its Authorization header value.
 */
export function parseBaseUrl(raw: string): { base: BaseUrl; username: string | undefined; password: string | undefined } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('upstream.url is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('upstream.url must be http: or https:');
  // Credentials in the URL work too, but never stay in it (the id is printed and hashed).
  const username = url.username ? safeDecode(url.username) : undefined;
  const password = url.password ? safeDecode(url.password) : undefined;
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return { base: new BaseUrl(url), username, password };
}

/** Canonical paths ↔ request targets and response hrefs, below the base URL. */
export class BaseUrl {
  /** Without credentials, query or fragment; the path ends in "/". */
  readonly url: URL;
  readonly origin: string;
  /** Encoded path prefix of the base URL without its trailing slash ("" or "/dav"). */
  readonly #basePath: string;
  /** Decoded segments of the prefix, to recognise hrefs. */
  readonly #baseSegs: string[];

  constructor(url: URL) {
    this.url = url;
    this.origin = url.origin;
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.#baseSegs = url.pathname.split('/').filter(Boolean).map((s) => safeDecode(s) ?? s);
  }

  /** Request path (encoded) of a canonical path; `dir` adds the trailing slash of a collection. */
  target(path: string, dir = false): string {
    if (path === '/') return this.#basePath + '/';
    return this.#basePath + encodeHref(path) + (dir ? '/' : '');
  }

  /** Canonical path of an href from a response, or null when it lies outside the base. */
  pathOfHref(href: string): string | null {
    let u: URL;
    try {
      u = new URL(href, this.url);
    } catch {
      return null;
    }
    const segs: string[] = [];
    for (const raw of u.pathname.split('/')) {
      if (raw === '') continue;
      const s = safeDecode(raw);
      if (s === undefined || s.includes('/') || s.includes('\0') || s === '.' || s === '..') return null;
      segs.push(s);
    }
    if (segs.length < this.#baseSegs.length) return null;
    for (let i = 0; i < this.#baseSegs.length; i++) if (segs[i] !== this.#baseSegs[i]) return null;
    return '/' + segs.slice(this.#baseSegs.length).join('/');
  }
}
