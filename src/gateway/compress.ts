import type { ServerResponse } from 'node:http';
import { constants, createBrotliCompress, createGzip } from 'node:zlib';
import { writeChunk } from './drain.js';

// Listings (PROPFIND, the browser page) compress ~10:1 and are made of text we write as we go:
// when the client accepts it, they are sent with brotli (fast setting) or gzip, still streamed
// with back-pressure. File bodies are sent as they are (ranges, and mostly compressed already).

export type Encoding = 'br' | 'gzip';

/** The encoding to answer with for this Accept-Encoding: brotli, else gzip, else none. */
export function negotiateEncoding(accept: string | undefined): Encoding | undefined {
  if (!accept) return undefined;
  const q = new Map<string, number>();
  for (const part of accept.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    const weight = params.map((p) => /^\s*q=([\d.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    if (name) q.set(name, weight === undefined ? 1 : Number(weight));
  }
  const ok = (e: string) => (q.get(e) ?? q.get('*') ?? 0) > 0;
  return ok('br') ? 'br' : ok('gzip') ? 'gzip' : undefined;
}

/** A streamed response body: write with back-pressure, then end. */
export interface Body {
  write(chunk: string): Promise<void>;
  end(chunk?: string): void;
}

/** Sends the status and headers, and returns the body, compressed when `accept` allows. */
export function startBody(accept: string | undefined, res: ServerResponse, status: number, headers: Record<string, string>): Body {
  const encoding = negotiateEncoding(accept);
  const vary = headers.vary ? `${headers.vary}, Accept-Encoding` : 'Accept-Encoding';
  if (!encoding) {
    res.writeHead(status, { ...headers, vary });
    return { write: (c) => writeChunk(res, c), end: (c) => { res.end(c); } };
  }
  res.writeHead(status, { ...headers, vary, 'content-encoding': encoding });
  const z = encoding === 'br'
    ? createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 4, [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT } })
    : createGzip({ level: 6 });
  z.pipe(res);
  // The client went away: the compressor is closed too, so a write waiting on it fails.
  res.once('close', () => { if (!res.writableFinished) z.destroy(); });
  z.once('error', () => res.destroy());
  return { write: (c) => writeChunk(z, c), end: (c) => { z.end(c); } };
}
