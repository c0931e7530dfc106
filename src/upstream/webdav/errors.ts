import {
  BadRequestError, ConflictError, DavgateError, InsufficientStorageError, NotFoundError, PreconditionFailedError,
  UnauthorizedError, UnsupportedError, UpstreamUnavailableError,
  BodyTooLargeError, ForbiddenError, LockedError, NameTooLongError, UpstreamTimeoutError,
} from '../../errors.js';
import type { Method } from './http.js';

// Failures of the WebDAV upstream become davgate errors here, and only here.

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

/** Transport failures (undici, sockets) become davgate errors here. No URL, no header in the message. */
export function transportError(err: unknown, op: string): DavgateError {
  if (err instanceof DavgateError) return err;
  const code = (err as { code?: string } | undefined)?.code;
  // e.g. a forwarded Authorization header with a line break in it: never sent.
  if (code === 'UND_ERR_INVALID_ARG') return new BadRequestError(`invalid request to the WebDAV upstream (${op})`);
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new UpstreamTimeoutError(`WebDAV upstream timed out (${op}, ${code})`);
  }
  return new UpstreamUnavailableError(`WebDAV upstream unreachable (${op}${code ? `, ${code}` : ''})`);
}

/** The one status → error table of this backend. Messages carry the method, path and status only. */
export function statusError(status: number, op: Method, path: string): DavgateError {
  switch (status) {
    case 400: return new BadRequestError(`WebDAV upstream refused ${op} ${path} (400)`);
    case 401: return new UnauthorizedError();
    case 403: return new ForbiddenError(`WebDAV upstream forbids ${op} ${path}`);
    case 404: case 410: return new NotFoundError(path);
    case 405: return new UnsupportedError(`${op} on ${path}`);
    case 409: return new ConflictError(`WebDAV upstream: conflict on ${op} ${path}`);
    case 412: return new PreconditionFailedError(`WebDAV upstream: precondition failed on ${op} ${path}`);
    case 413: return new BodyTooLargeError(`WebDAV upstream refused a body this large for ${path}`);
    case 414: return new NameTooLongError(`path too long for the WebDAV upstream: ${path}`);
    case 423: return new LockedError(`${path} is locked on the WebDAV upstream`);
    case 504: return new UpstreamTimeoutError(`WebDAV upstream timed out (${op} ${path}, 504)`);
    case 507: return new InsufficientStorageError();
    default:
      return new UpstreamUnavailableError(`WebDAV upstream answered ${status} to ${op} ${path}`);
  }
}
