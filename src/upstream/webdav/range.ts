import type { Dispatcher } from 'undici';
import { UpstreamUnavailableError } from '../../errors.js';
import { transportError } from './errors.js';
import { contentRange, discard, header, type DavClient } from './http.js';
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
 * The bytes [offset, offset + length) by a direct GET (DavClient.getInto) when the answer is a
 * 206 for exactly that range, of the expected version; undefined when this path cannot take the
 * answer (then nothing was written to the sink and the caller asks through undici).
 */
export async function readDirect(
  http: DavClient, target: string, ctx: CallContext | undefined, headers: Record<string, string>,
  offset: number, length: number, expect: Expect | undefined, sink?: ReadSink,
): Promise<Buffer | undefined> {
  const into = targetOf(sink, length);
  const r = await http.getInto(target, ctx, headers, into, (head) => {
    if (head.status !== 206) return false;
    const cr = contentRange(head.headers['content-range']);
    return cr.start === offset && (!expect || sameVersion(expect, head.headers, cr.total));
  }, (filled) => sink?.progress(filled));
  if (!r?.taken) return undefined;
  return r.got === length ? into : into.subarray(0, r.got);
}
