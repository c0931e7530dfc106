import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { DavgateError } from '../errors.js';

// Bounds checked on every request before any work is done for it: the cost of a request must
// not grow with what a client chooses to send (a path of 7k segments once cost seconds, spent
// segment by segment in lock and parent lookups).

export function checkRequestLimits(req: FastifyRequest, config: Config): void {
  const w = config.webdav;
  const url = req.raw.url ?? '/';
  if (url.length > w.maxUrlBytes) throw new DavgateError('DAVGATE_URI_TOO_LONG', `request target over ${w.maxUrlBytes} bytes`);
  let segments = 0;
  for (let i = url.indexOf('/'); i !== -1; i = url.indexOf('/', i + 1)) {
    if (++segments > w.maxPathSegments) throw new DavgateError('DAVGATE_URI_TOO_LONG', `path of more than ${w.maxPathSegments} segments`);
  }
  // Node answers 431 itself beyond 16 KiB of headers; their number is ours to bound.
  if (req.raw.rawHeaders.length / 2 > w.maxHeaders) throw new DavgateError('DAVGATE_HEADERS_TOO_LARGE', `more than ${w.maxHeaders} header fields`);
}
