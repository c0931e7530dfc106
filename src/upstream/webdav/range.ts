import type { Dispatcher } from 'undici';
import { UpstreamUnavailableError } from '../../errors.js';
import { transportError } from './errors.js';
import { contentRange, discard, header } from './http.js';
import { sameVersion, toInt, type Expect } from './validators.js';
import type { ReadSink } from '../types.js';

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
  // Copied into one buffer as the chunks arrive ('data' events): an async iterator and a
  // concat at the end cost about as much as the transfer itself on loopback.
  const out = sink?.buffer ?? Buffer.allocUnsafe(length);
  let got = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const body = res.body;
      body.on('data', (c: Buffer) => {
        let b = c;
        if (skip > 0) {
          if (b.length <= skip) { skip -= b.length; return; }
          b = b.subarray(skip);
          skip = 0;
        }
        got += b.copy(out, got, 0, Math.min(b.length, length - got));
        sink?.progress(got);
        if (got >= length) { body.removeAllListeners('data'); resolve(); } // the rest of a full (200) body is destroyed below
      });
      body.once('end', resolve);
      body.once('error', reject);
    });
  } catch (e) {
    throw transportError(e, 'GET');
  } finally {
    discard(res);
  }
  return got === length ? out : out.subarray(0, got);
}
