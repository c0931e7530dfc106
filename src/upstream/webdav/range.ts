import type { Dispatcher } from 'undici';
import { UpstreamUnavailableError } from '../../errors.js';
import { transportError } from './errors.js';
import { discard, header, type DavClient } from './http.js';
import { contentRange } from '../direct.js';
import { sameVersion, toInt, type Expect } from './validators.js';
import type { CallContext, ReadSink } from '../types.js';
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
