import type { Dispatcher } from 'undici';
import { IsADirectoryError, NotFoundError, UpstreamUnavailableError } from '../../errors.js';
import { statusError, transportError } from './errors.js';
import { discard, drain, fail, header, type DavClient } from './http.js';
import { contentRange } from '../direct.js';
import { sameVersion, toInt, type Expect } from './validators.js';

// Ranged reads of one version: the direct path (../direct.ts) for the common answer, undici
// for every other, and the check of every response against the expected version.
import type { CallContext, Entry, ReadSink } from '../types.js';
import { collectBody, targetOf } from '../collect.js';

/**
 * The bytes [offset, offset + length) from the body of a successful (200 or 206) GET of `path`.
 * `changed` is thrown when the response is of another version than `expect` names.
 */
export async function bytesOf(
  res: Dispatcher.ResponseData, path: string, offset: number, length: number,
  expect: Expect | undefined, changed: () => Error, sink?: ReadSink,
): Promise<Buffer> {
  // Which bytes came back: a 206 from `start`, or (server ignoring Range) the whole file.
  let skip: number;
  let total: number | undefined;
  if (res.statusCode === 206) {
    const cr = contentRange(header(res.headers, 'content-range'));
    total = cr.total;
    if (cr.start === undefined || cr.start > offset) {
      discard(res);
      throw new UpstreamUnavailableError(`WebDAV upstream sent an unusable range for ${path}`);
    }
    skip = offset - cr.start;
  } else {
    total = toInt(header(res.headers, 'content-length'));
    skip = offset;
  }
  if (expect && !sameVersion(expect, res.headers, total)) {
    discard(res);
    throw changed();
  }
  try {
    return await collectBody(res.body, skip, length, sink, toInt(header(res.headers, 'content-length')));
  } catch (e) {
    discard(res);
    throw transportError(e, 'GET');
  }
}

/**
 * The bytes [offset, offset + length) by a direct GET (DavClient.getRange) when the answer is a
 * 206 for exactly that range, of the expected version; undefined when this path cannot take the
 * answer (then nothing was written to the sink and the caller asks through undici).
 */
export function readDirect(
  http: DavClient, target: string, ctx: CallContext | undefined, headers: Record<string, string>,
  offset: number, length: number, expect: Expect | undefined, sink?: ReadSink,
): Promise<Buffer | undefined> {
  return http.getRange(target, ctx, headers, offset, targetOf(sink, length),
    (head, total) => !expect || sameVersion(expect, head.headers, total), (filled) => sink?.progress(filled));
}

/** One ranged read (length > 0), and what it needs from the upstream around it. */
export interface RangeRequest {
  readonly http: DavClient;
  readonly target: string;
  readonly ctx: CallContext | undefined;
  readonly path: string;
  readonly offset: number;
  readonly length: number;
  /** The version the bytes must be of; undefined: any. */
  readonly expect: Expect | undefined;
  readonly sink: ReadSink | undefined;
  /** The error for "another version". */
  changed: () => Error;
  /** Does a PROPFIND still report the expected version? For the answers a GET cannot settle. */
  stillCurrent(): Promise<boolean>;
  /** The entry at the path now, null when absent. */
  statOrNull(): Promise<Entry | null>;
}

function rangeHeaders(r: RangeRequest, conditional: boolean): Record<string, string> {
  const h: Record<string, string> = { range: `bytes=${r.offset}-${r.offset + r.length - 1}`, 'accept-encoding': 'identity' };
  if (conditional && r.expect?.etag) h['if-match'] = r.expect.etag;
  else if (conditional && r.expect?.mtimeMs) h['if-unmodified-since'] = new Date(r.expect.mtimeMs).toUTCString();
  return h;
}

/** The bytes [offset, offset + length) of the expected version; PreconditionFailed (`changed`) for another. */
export async function getRange(r: RangeRequest): Promise<Buffer> {
  // The common answer (206 of this version) straight into the block buffer; anything else
  // is asked again below, where every case is handled.
  const direct = await readDirect(r.http, r.target, r.ctx, rangeHeaders(r, true), r.offset, r.length, r.expect, r.sink);
  if (direct) return direct;
  const get = (conditional: boolean) => r.http.request('GET', r.target, r.ctx, rangeHeaders(r, conditional));
  let res = await get(true);
  if (res.statusCode === 412 && r.expect?.etag) {
    // Apache never matches If-Match while the ETag is weak (file modified within the last
    // second). If PROPFIND still reports this version, ask again unconditionally and let
    // the response check (bytesOf) decide.
    await drain(res);
    if (!(await r.stillCurrent())) throw r.changed();
    res = await get(false);
  }
  if (res.statusCode !== 200 && res.statusCode !== 206) return otherAnswer(r, res);
  return bytesOf(res, r.path, r.offset, r.length, r.expect, r.changed, r.sink);
}

/** A GET answered with neither 200 nor 206: empty past the end, else the error it means. */
async function otherAnswer(r: RangeRequest, res: Dispatcher.ResponseData): Promise<Buffer> {
  const status = res.statusCode;
  if (status === 416) {
    // Past the end, of this version or of another one? (Apache's 416 has no Content-Range.)
    const { total } = contentRange(header(res.headers, 'content-range'));
    await drain(res);
    if (r.expect && (total !== undefined ? total !== r.expect.size : !(await r.stillCurrent()))) throw r.changed();
    return Buffer.alloc(0);
  }
  if (status === 412) {
    await drain(res);
    throw r.changed();
  }
  if ([301, 302, 307, 308, 400, 403, 404, 405].includes(status)) {
    // A collection (nginx redirects to "dir/", Apache answers 404 without mod_dir)?
    await drain(res);
    const e = await r.statOrNull();
    if (!e) throw new NotFoundError(r.path);
    if (e.kind === 'dir') throw new IsADirectoryError();
    throw statusError(status, 'GET', r.path);
  }
  return fail(res, 'GET', r.path);
}
