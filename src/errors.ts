// Every error davgate raises on purpose is a DavgateError with a stable code. Backends
// translate their own failures into these classes. A code gives the HTTP status
// (STATUS_BY_CODE, the one table that does so) and, where RFC 4918 names one, the WebDAV
// condition element; gateway/respond.ts turns any error into the answer a client sees.

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
  | 'DAVGATE_LOCK_CONFLICT'
  | 'DAVGATE_LOCK_TOKEN_MISMATCH'
  | 'DAVGATE_PROTECTED_PROPERTY'
  | 'DAVGATE_NOT_EMPTY'
  | 'DAVGATE_UNSUPPORTED'
  | 'DAVGATE_UNSUPPORTED_MEDIA_TYPE'
  | 'DAVGATE_METHOD_NOT_ALLOWED'
  | 'DAVGATE_RATE_LIMITED'
  | 'DAVGATE_UPSTREAM_UNAVAILABLE'
  | 'DAVGATE_UPSTREAM_TIMEOUT'
  | 'DAVGATE_SHARED_STATE_UNAVAILABLE'
  | 'DAVGATE_CACHE_CORRUPT'
  | 'DAVGATE_INSUFFICIENT_STORAGE'
  | 'DAVGATE_CONFIG'
  | 'DAVGATE_CACHE_IN_USE'
  | 'DAVGATE_NAME_TOO_LONG'
  | 'DAVGATE_URI_TOO_LONG'
  | 'DAVGATE_HEADERS_TOO_LARGE'
  | 'DAVGATE_LENGTH_REQUIRED'
  | 'DAVGATE_CHECKSUM_MISMATCH';

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
  DAVGATE_LOCK_CONFLICT: 423,
  DAVGATE_LOCK_TOKEN_MISMATCH: 409,
  DAVGATE_PROTECTED_PROPERTY: 403,
  DAVGATE_NOT_EMPTY: 409,
  DAVGATE_UNSUPPORTED: 501,
  DAVGATE_UNSUPPORTED_MEDIA_TYPE: 415,
  DAVGATE_METHOD_NOT_ALLOWED: 405,
  DAVGATE_RATE_LIMITED: 429,
  DAVGATE_UPSTREAM_UNAVAILABLE: 502,
  DAVGATE_UPSTREAM_TIMEOUT: 504,
  DAVGATE_SHARED_STATE_UNAVAILABLE: 503,
  DAVGATE_CACHE_CORRUPT: 500,
  DAVGATE_INSUFFICIENT_STORAGE: 507,
  DAVGATE_CONFIG: 500,
  DAVGATE_CACHE_IN_USE: 500,
  DAVGATE_NAME_TOO_LONG: 414,
  DAVGATE_URI_TOO_LONG: 414,
  DAVGATE_HEADERS_TOO_LARGE: 431,
  DAVGATE_LENGTH_REQUIRED: 411,
  DAVGATE_CHECKSUM_MISMATCH: 400,
});

/**
 * The RFC 4918 §16 precondition or postcondition element a code answers with, in a DAV:error
 * body. By code rather than by class, so that an upstream raising a bare DavgateError with one
 * of these codes is answered the same way.
 */
export const CONDITION_BY_CODE: Readonly<Partial<Record<ErrorCode, string>>> = Object.freeze({
  DAVGATE_FINITE_DEPTH: 'propfind-finite-depth',
  DAVGATE_LOCKED: 'lock-token-submitted',
  DAVGATE_LOCK_CONFLICT: 'no-conflicting-lock',
  DAVGATE_LOCK_TOKEN_MISMATCH: 'lock-token-matches-request-uri',
  DAVGATE_PROTECTED_PROPERTY: 'cannot-modify-protected-property',
});

export class DavgateError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }

  get status(): number { return STATUS_BY_CODE[this.code]; }

  /** The DAV:error element of the answer, if RFC 4918 names one for this error. */
  get condition(): string | undefined { return CONDITION_BY_CODE[this.code]; }

  /** Response headers this error needs besides its status (Allow, Retry-After, ...). */
  headers(): Record<string, string> { return {}; }
}

// ---- 4xx: what the client asked for cannot be done

export class NotFoundError extends DavgateError {
  constructor(what = 'resource') { super('DAVGATE_NOT_FOUND', `${what} not found`); }
}
/** A refusal whose message is the whole reason. */
export class ForbiddenError extends DavgateError {
  constructor(message: string) { super('DAVGATE_FORBIDDEN_PATH', message); }
}
export class ForbiddenPathError extends ForbiddenError {
  constructor(reason: string) { super(`path refused: ${reason}`); }
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
export class MethodNotAllowedError extends DavgateError {
  readonly allow: string;
  constructor(allow: string) {
    super('DAVGATE_METHOD_NOT_ALLOWED', 'method not allowed');
    this.allow = allow;
  }
  override headers(): Record<string, string> { return { allow: this.allow }; }
}
export class BadRequestError extends DavgateError {
  constructor(message: string, code: ErrorCode = 'DAVGATE_BAD_REQUEST') { super(code, message); }
}
export class BadXmlError extends BadRequestError {
  constructor(message: string) { super(message, 'DAVGATE_BAD_XML'); }
}
export class BadDepthError extends BadRequestError {
  constructor(message: string) { super(message, 'DAVGATE_BAD_DEPTH'); }
}
export class BadDestinationError extends BadRequestError {
  constructor(message: string) { super(message, 'DAVGATE_BAD_DESTINATION'); }
}
export class IncompleteBodyError extends DavgateError {
  constructor(message = 'request body ended before Content-Length bytes') { super('DAVGATE_INCOMPLETE_BODY', message); }
}
export class RangeNotSatisfiableError extends DavgateError {
  /** The representation's length, which the 416 reports in Content-Range. */
  readonly size: number;
  constructor(size: number) {
    super('DAVGATE_BAD_RANGE', 'range not satisfiable');
    this.size = size;
  }
  override headers(): Record<string, string> { return { 'content-range': `bytes */${this.size}` }; }
}
export class LengthRequiredError extends DavgateError {
  constructor(message: string) { super('DAVGATE_LENGTH_REQUIRED', message); }
}
export class PreconditionFailedError extends DavgateError {
  constructor(message = 'precondition failed') { super('DAVGATE_PRECONDITION_FAILED', message); }
}
export class BodyTooLargeError extends DavgateError {
  constructor(message: string) { super('DAVGATE_BODY_TOO_LARGE', message); }
}
export class UnsupportedMediaTypeError extends DavgateError {
  constructor(message: string) { super('DAVGATE_UNSUPPORTED_MEDIA_TYPE', message); }
}
export class UriTooLongError extends DavgateError {
  constructor(message: string) { super('DAVGATE_URI_TOO_LONG', message); }
}
export class NameTooLongError extends DavgateError {
  constructor(message: string) { super('DAVGATE_NAME_TOO_LONG', message); }
}
export class HeadersTooLargeError extends DavgateError {
  constructor(message: string) { super('DAVGATE_HEADERS_TOO_LARGE', message); }
}
export class ReadOnlyError extends DavgateError {
  constructor() { super('DAVGATE_READ_ONLY', 'this account is read-only'); }
}
export class NotEmptyError extends DavgateError {
  constructor() { super('DAVGATE_NOT_EMPTY', 'collection is not empty'); }
}

// ---- WebDAV conditions (the body names the RFC 4918 element)

export class FiniteDepthError extends DavgateError {
  constructor(message = 'Depth: infinity is disabled on this server') { super('DAVGATE_FINITE_DEPTH', message); }
}
/** A lock covers the target and its token was not submitted. */
export class LockedError extends DavgateError {
  constructor(message = 'resource is locked') { super('DAVGATE_LOCKED', message); }
}
/** A LOCK request conflicts with a lock already held. */
export class LockConflictError extends DavgateError {
  constructor(message = 'resource is already locked') { super('DAVGATE_LOCK_CONFLICT', message); }
}
/** UNLOCK with a token that is not a lock covering the request URI. */
export class LockTokenMismatchError extends DavgateError {
  constructor() { super('DAVGATE_LOCK_TOKEN_MISMATCH', 'the lock token does not match the request URI'); }
}
/** PROPPATCH of a live property computed from the upstream or the lock table. */
export class ProtectedPropertyError extends DavgateError {
  constructor(name = 'property') { super('DAVGATE_PROTECTED_PROPERTY', `${name} is protected`); }
}

// ---- authentication

export class UnauthorizedError extends DavgateError {
  constructor(message = 'the upstream refused these credentials') { super('DAVGATE_UNAUTHORIZED', message); }
}
/** No or wrong credentials for the gateway itself (the challenge is added where the realm is known). */
export class AuthRequiredError extends UnauthorizedError {
  constructor() { super('authentication required'); }
}
/** The admin listener's bearer token is missing or wrong. */
export class AdminTokenRequiredError extends UnauthorizedError {
  constructor() { super('admin token required (Authorization: Bearer ...)'); }
  override headers(): Record<string, string> { return { 'www-authenticate': 'Bearer realm="davgate admin"' }; }
}
/** A store notification without the shared secret (401) or with another one (403). */
export class NotifySecretRequiredError extends UnauthorizedError {
  constructor() { super('notification secret required'); }
}
export class NotifySecretMismatchError extends ForbiddenError {
  constructor() { super('notification secret does not match'); }
}
export class TooManyLoginsError extends DavgateError {
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super('DAVGATE_RATE_LIMITED', 'too many failed logins: try again later');
    this.retryAfterSeconds = retryAfterSeconds;
  }
  override headers(): Record<string, string> { return { 'retry-after': String(this.retryAfterSeconds) }; }
}

// ---- 5xx: the upstream, the cache or the configuration failed

export class UnsupportedError extends DavgateError {
  constructor(what: string) { super('DAVGATE_UNSUPPORTED', `${what} is not supported by this upstream`); }
}
export class UpstreamUnavailableError extends DavgateError {
  constructor(message: string, options?: { cause?: unknown }) { super('DAVGATE_UPSTREAM_UNAVAILABLE', message, options); }
}
export class UpstreamTimeoutError extends DavgateError {
  constructor(message: string, options?: { cause?: unknown }) { super('DAVGATE_UPSTREAM_TIMEOUT', message, options); }
}
/**
 * The state shared by several gateways (Redis: locks, dead properties, the invalidation bus)
 * cannot be reached: what needs it is refused at once, to be retried, never left waiting.
 */
export class SharedStateUnavailableError extends DavgateError {
  readonly retryAfterSeconds: number;
  constructor(message = 'shared state (Redis) is unavailable: try again shortly', options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super('DAVGATE_SHARED_STATE_UNAVAILABLE', message, options);
    this.retryAfterSeconds = options?.retryAfterSeconds ?? 2;
  }
  override headers(): Record<string, string> { return { 'retry-after': String(this.retryAfterSeconds) }; }
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
export class CacheInUseError extends DavgateError {
  constructor(dir: string) { super('DAVGATE_CACHE_IN_USE', `cache directory ${dir} is in use by another davgate process`); }
}

/** The upstream could not be reached or did not answer in time: worth a retry, not a verdict. */
export function isTransient(err: unknown): boolean {
  return err instanceof DavgateError && (err.code === 'DAVGATE_UPSTREAM_UNAVAILABLE' || err.code === 'DAVGATE_UPSTREAM_TIMEOUT');
}

export function statusOf(err: unknown): number {
  return err instanceof DavgateError ? err.status : 500;
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
    case 'EACCES': case 'EPERM': return new ForbiddenError('permission denied');
    case 'ENOSPC': case 'EDQUOT': return new InsufficientStorageError();
    case 'ENAMETOOLONG': return new NameTooLongError('a name in the path is too long for the upstream');
    default: return new UpstreamUnavailableError(`upstream error ${code ?? ''}`.trim(), { cause: err });
  }
}
