// Every error davgate raises on purpose is a DavgateError with a stable code.
// Backends translate their own failures into these classes; the gateway maps
// codes to HTTP statuses through STATUS_BY_CODE, the one table that does so.

export type ErrorCode =
  | 'DAVGATE_NOT_FOUND'
  | 'DAVGATE_FORBIDDEN_PATH'
  | 'DAVGATE_CONFLICT'
  | 'DAVGATE_EXISTS'
  | 'DAVGATE_NOT_A_DIRECTORY'
  | 'DAVGATE_IS_A_DIRECTORY'
  | 'DAVGATE_BAD_REQUEST'
  | 'DAVGATE_BAD_XML'
  | 'DAVGATE_BAD_RANGE'
  | 'DAVGATE_BAD_DEPTH'
  | 'DAVGATE_BAD_DESTINATION'
  | 'DAVGATE_PRECONDITION_FAILED'
  | 'DAVGATE_BODY_TOO_LARGE'
  | 'DAVGATE_INCOMPLETE_BODY'
  | 'DAVGATE_FINITE_DEPTH'
  | 'DAVGATE_READ_ONLY'
  | 'DAVGATE_UNAUTHORIZED'
  | 'DAVGATE_LOCKED'
  | 'DAVGATE_NOT_EMPTY'
  | 'DAVGATE_UNSUPPORTED'
  | 'DAVGATE_UPSTREAM_UNAVAILABLE'
  | 'DAVGATE_UPSTREAM_TIMEOUT'
  | 'DAVGATE_CACHE_CORRUPT'
  | 'DAVGATE_INSUFFICIENT_STORAGE'
  | 'DAVGATE_CONFIG'
  | 'DAVGATE_CACHE_IN_USE'
  | 'DAVGATE_NAME_TOO_LONG'
  | 'DAVGATE_URI_TOO_LONG'
  | 'DAVGATE_HEADERS_TOO_LARGE';

export class DavgateError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export class NotFoundError extends DavgateError {
  constructor(what = 'resource') { super('DAVGATE_NOT_FOUND', `${what} not found`); }
}
export class ForbiddenPathError extends DavgateError {
  constructor(reason: string) { super('DAVGATE_FORBIDDEN_PATH', `path refused: ${reason}`); }
}
export class ConflictError extends DavgateError {
  constructor(message: string) { super('DAVGATE_CONFLICT', message); }
}
export class ExistsError extends DavgateError {
  constructor(message = 'resource already exists') { super('DAVGATE_EXISTS', message); }
}
export class NotADirectoryError extends DavgateError {
  constructor(message = 'not a collection') { super('DAVGATE_NOT_A_DIRECTORY', message); }
}
export class IsADirectoryError extends DavgateError {
  constructor(message = 'is a collection') { super('DAVGATE_IS_A_DIRECTORY', message); }
}
export class BadRequestError extends DavgateError {
  constructor(message: string, code: ErrorCode = 'DAVGATE_BAD_REQUEST') { super(code, message); }
}
export class PreconditionFailedError extends DavgateError {
  constructor(message = 'precondition failed') { super('DAVGATE_PRECONDITION_FAILED', message); }
}
export class IncompleteBodyError extends DavgateError {
  constructor(message = 'request body ended before Content-Length bytes') { super('DAVGATE_INCOMPLETE_BODY', message); }
}
export class ReadOnlyError extends DavgateError {
  constructor() { super('DAVGATE_READ_ONLY', 'this account is read-only'); }
}
export class NotEmptyError extends DavgateError {
  constructor() { super('DAVGATE_NOT_EMPTY', 'collection is not empty'); }
}
export class UnsupportedError extends DavgateError {
  constructor(what: string) { super('DAVGATE_UNSUPPORTED', `${what} is not supported by this upstream`); }
}
export class UpstreamUnavailableError extends DavgateError {
  constructor(message: string, options?: { cause?: unknown }) { super('DAVGATE_UPSTREAM_UNAVAILABLE', message, options); }
}
export class CacheCorruptError extends DavgateError {
  constructor(message: string) { super('DAVGATE_CACHE_CORRUPT', message); }
}
export class InsufficientStorageError extends DavgateError {
  constructor(message = 'no space left on the upstream') { super('DAVGATE_INSUFFICIENT_STORAGE', message); }
}
export class ConfigError extends DavgateError {
  constructor(message: string) { super('DAVGATE_CONFIG', message); }
}
export class UnauthorizedError extends DavgateError {
  constructor(message = 'the upstream refused these credentials') { super('DAVGATE_UNAUTHORIZED', message); }
}
export class CacheInUseError extends DavgateError {
  constructor(dir: string) { super('DAVGATE_CACHE_IN_USE', `cache directory ${dir} is in use by another davgate process`); }
}

/** The one place where an error code becomes an HTTP status. */
export const STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = Object.freeze({
  DAVGATE_NOT_FOUND: 404,
  DAVGATE_FORBIDDEN_PATH: 403,
  DAVGATE_CONFLICT: 409,
  DAVGATE_EXISTS: 405,
  DAVGATE_NOT_A_DIRECTORY: 409,
  DAVGATE_IS_A_DIRECTORY: 405,
  DAVGATE_BAD_REQUEST: 400,
  DAVGATE_BAD_XML: 400,
  DAVGATE_BAD_RANGE: 416,
  DAVGATE_BAD_DEPTH: 400,
  DAVGATE_BAD_DESTINATION: 400,
  DAVGATE_PRECONDITION_FAILED: 412,
  DAVGATE_BODY_TOO_LARGE: 413,
  DAVGATE_INCOMPLETE_BODY: 400,
  DAVGATE_FINITE_DEPTH: 403,
  DAVGATE_READ_ONLY: 403,
  DAVGATE_UNAUTHORIZED: 401,
  DAVGATE_LOCKED: 423,
  DAVGATE_NOT_EMPTY: 409,
  DAVGATE_UNSUPPORTED: 501,
  DAVGATE_UPSTREAM_UNAVAILABLE: 502,
  DAVGATE_UPSTREAM_TIMEOUT: 504,
  DAVGATE_CACHE_CORRUPT: 500,
  DAVGATE_INSUFFICIENT_STORAGE: 507,
  DAVGATE_CONFIG: 500,
  DAVGATE_CACHE_IN_USE: 500,
  DAVGATE_NAME_TOO_LONG: 414,
  DAVGATE_URI_TOO_LONG: 414,
  DAVGATE_HEADERS_TOO_LARGE: 431,
});

/** The upstream could not be reached or did not answer in time: worth a retry, not a verdict. */
export function isTransient(err: unknown): boolean {
  return err instanceof DavgateError && (err.code === 'DAVGATE_UPSTREAM_UNAVAILABLE' || err.code === 'DAVGATE_UPSTREAM_TIMEOUT');
}

export function statusOf(err: unknown): number {
  if (err instanceof DavgateError) return STATUS_BY_CODE[err.code];
  return 500;
}

/** Turn a Node system error (ENOENT, EEXIST, ...) into a DavgateError. */
export function fromSystemError(err: unknown, what = 'resource'): DavgateError {
  if (err instanceof DavgateError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT': return new NotFoundError(what);
    case 'EEXIST': return new ExistsError();
    case 'ENOTDIR': return new NotADirectoryError();
    case 'EISDIR': return new IsADirectoryError();
    case 'ENOTEMPTY': return new NotEmptyError();
    case 'ELOOP': return new ForbiddenPathError('symbolic link');
    case 'EACCES': case 'EPERM': return new DavgateError('DAVGATE_FORBIDDEN_PATH', 'permission denied');
    case 'ENOSPC': case 'EDQUOT': return new InsufficientStorageError();
    case 'ENAMETOOLONG': return new DavgateError('DAVGATE_NAME_TOO_LONG', 'a name in the path is too long for the upstream');
    default: return new UpstreamUnavailableError(`upstream error ${code ?? ''}`.trim(), { cause: err });
  }
}
