import { Transform, type TransformCallback } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config.js';
import { BodyTooLargeError, HeadersTooLargeError, UriTooLongError } from '../errors.js';

// Bounds checked on every request before any work is done for it: the cost of a request must
// not grow with what a client chooses to send (a path of 7k segments once cost seconds, spent
// segment by segment in lock and parent lookups).

export function checkRequestLimits(req: IncomingMessage, config: Config): void {
  const w = config.webdav;
  const url = req.url ?? '/';
  if (url.length > w.maxUrlBytes) throw new UriTooLongError(`request target over ${w.maxUrlBytes} bytes`);
  let segments = 0;
  for (let i = url.indexOf('/'); i !== -1; i = url.indexOf('/', i + 1)) {
    if (++segments > w.maxPathSegments) throw new UriTooLongError(`path of more than ${w.maxPathSegments} segments`);
  }
  // Node answers 431 itself beyond 16 KiB of headers; their number is ours to bound.
  if (req.rawHeaders.length / 2 > w.maxHeaders) throw new HeadersTooLargeError(`more than ${w.maxHeaders} header fields`);
}

/**
 * A request body may not exceed `max` bytes (413): checked against the length a client declares
 * before anything is read, and again against the bytes counted while reading, since a chunked
 * body declares none.
 */
export function checkBodyLength(bytes: number | undefined, max: number | undefined): void {
  if (bytes !== undefined && max !== undefined && bytes > max) throw new BodyTooLargeError(`request body over ${max} bytes`);
}

/** Passes a streamed body through, counting it against `max` (checkBodyLength). */
export class BodyLimit extends Transform {
  #seen = 0;
  readonly #max: number;
  constructor(max: number) {
    super({ highWaterMark: 1 << 20 });
    this.#max = max;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#seen += chunk.length;
    try {
      checkBodyLength(this.#seen, this.#max);
    } catch (err) {
      cb(err as Error);
      return;
    }
    cb(null, chunk);
  }
}
