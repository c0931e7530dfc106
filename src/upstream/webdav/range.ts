import type { Dispatcher } from 'undici';
import { UpstreamUnavailableError } from '../../errors.js';
import { transportError } from './errors.js';
import { contentRange, discard, header } from './http.js';
import { sameVersion, toInt, type Expect } from './validators.js';

/**
 * The bytes [offset, offset + length) from the body of a successful (200 or 206) GET of `path`.
 * `changed` is thrown when the response is of another version than `expect` names.
 */
export async function bytesOf(
  res: Dispatcher.ResponseData, path: string, offset: number, length: number,
  expect: Expect | undefined, changed: () => Error,
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
  const chunks: Buffer[] = [];
  let got = 0;
  try {
    for await (const c of res.body) {
      let b = c as Buffer;
      if (skip > 0) {
        if (b.length <= skip) { skip -= b.length; continue; }
        b = b.subarray(skip);
        skip = 0;
      }
      if (got + b.length > length) b = b.subarray(0, length - got);
      chunks.push(b);
      got += b.length;
      if (got >= length) break; // leaving the loop destroys the rest of a full (200) body
    }
  } catch (e) {
    throw transportError(e, 'GET');
  } finally {
    discard(res);
  }
  return chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, got);
}
