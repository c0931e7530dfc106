import type { IncomingHttpHeaders } from 'node:http';
import rangeParser from 'range-parser';
import type { Node } from '../cachemgr/cachemgr.js';
import { PreconditionFailedError, RangeNotSatisfiableError } from '../errors.js';

// Conditional requests (RFC 9110 §13) and a single byte range (§14) for GET/HEAD. Several
// ranges are answered with the whole body, which the RFC allows.

/** The ETag of a node: its version, a digest of the upstream validator. */
export function etagOf(node: Node): string {
  return `"${node.version}"`;
}

function etagMatches(header: string, etag: string, weak: boolean): boolean {
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => {
    let tag = t.trim();
    if (weak && tag.startsWith('W/')) tag = tag.slice(2);
    return tag === etag;
  });
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

/** What a read answers: 304, the whole file, or one byte range (inclusive). */
export type ReadVerdict = 'not-modified' | 'full' | [number, number];

/** What a GET/HEAD answers: 'full', one [start, end] range, or 'not-modified'. Throws for 412 and 416. */
export function evaluateRead(h: IncomingHttpHeaders, node: Node): ReadVerdict {
  const etag = etagOf(node);
  if (h['if-match'] && !etagMatches(h['if-match'], etag, false)) throw new PreconditionFailedError();
  if (!h['if-match'] && h['if-unmodified-since']) {
    const t = Date.parse(h['if-unmodified-since']);
    if (!Number.isNaN(t) && seconds(node.mtimeMs) > seconds(t)) throw new PreconditionFailedError();
  }
  if (h['if-none-match']) {
    if (etagMatches(h['if-none-match'], etag, true)) return 'not-modified';
  } else if (h['if-modified-since']) {
    const t = Date.parse(h['if-modified-since']);
    if (!Number.isNaN(t) && seconds(node.mtimeMs) <= seconds(t)) return 'not-modified';
  }
  const range = h.range;
  if (!range || node.kind !== 'file') return 'full';
  if (!/^\s*bytes\s*=/i.test(range)) return 'full'; // unknown range unit: ignored (RFC 9110 §14.2)
  const ifRange = typeof h['if-range'] === 'string' ? h['if-range'] : undefined;
  if (ifRange) {
    const matches = ifRange.trim().startsWith('"') || ifRange.trim().startsWith('W/')
      ? ifRange.trim() === etag
      : seconds(Date.parse(ifRange)) === seconds(node.mtimeMs);
    if (!matches) return 'full';
  }
  const parsed = rangeParser(node.size, range, { combine: true });
  if (parsed === -1 || parsed === -2) throw new RangeNotSatisfiableError(node.size);
  if (parsed.length !== 1) return 'full';
  return [parsed[0]!.start, parsed[0]!.end];
}

