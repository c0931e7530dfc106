import { ForbiddenPathError, BadRequestError } from './errors.js';

// Canonical DAV paths: the only form of a path that crosses a layer boundary.
// "/" is the root; "/a/b" otherwise; decoded exactly once; no ".", "..", NUL or empty segment.

/**
 * Turn the path part of a request URL (still percent-encoded, no query) into a canonical
 * path. Traversal is refused, not resolved: "/a/../b" is an attack or a broken client,
 * and quietly serving "/b" would hide either.
 */
export function canonicalFromUrlPath(rawPath: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw new BadRequestError('malformed percent-encoding in path');
  }
  return canonicalPath(decoded);
}

/** Canonicalise an already-decoded path, refusing traversal and control bytes. */
export function canonicalPath(decoded: string): string {
  if (decoded.includes('\0')) throw new ForbiddenPathError('NUL byte');
  if (decoded.includes('\\')) throw new ForbiddenPathError('backslash');
  const out: string[] = [];
  for (const seg of decoded.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') throw new ForbiddenPathError('".." segment');
    out.push(seg);
  }
  return '/' + out.join('/');
}

/**
 * The segments of a path that must already be canonical (what crosses into an upstream):
 * refused, never repaired, when it is not absolute, has a NUL, or an empty, "." or ".." segment.
 */
export function canonicalSegments(path: string): string[] {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new ForbiddenPathError('not an absolute path');
  if (path.includes('\0')) throw new ForbiddenPathError('NUL byte');
  if (path === '/') return [];
  const segs = path.slice(1).split('/');
  for (const s of segs) {
    if (s === '' || s === '.' || s === '..') throw new ForbiddenPathError(`non-canonical segment "${s}"`);
  }
  return segs;
}

/** Plain ASCII: no Unicode normal form to consider (UTF-8 bytes equal characters). */
export function isAscii(s: string): boolean {
  return Buffer.byteLength(s) === s.length;
}

export function parentOf(path: string): string {
  if (path === '/') return '/';
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function nameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? '/' + name : dir + '/' + name;
}

/** True when `path` is `prefix` itself or lies below it. */
export function isWithin(path: string, prefix: string): boolean {
  return prefix === '/' || path === prefix || path.startsWith(prefix + '/');
}

const UNRESERVED_PATH = /^[A-Za-z0-9\-._~/]*$/;

/** Percent-encode a canonical path for an href (RFC 3986 unreserved kept, upper-case escapes). */
export function encodeHref(path: string): string {
  if (UNRESERVED_PATH.test(path)) return path; // most names: nothing to encode
  return path.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())).join('/');
}
