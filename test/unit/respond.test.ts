import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as errors from '../../src/errors.js';
import { DavgateError, STATUS_BY_CODE, CONDITION_BY_CODE, type ErrorCode } from '../../src/errors.js';
import { errorResponse, sendError } from '../../src/gateway/respond.js';
import { basicChallenge } from '../../src/gateway/auth.js';

const opts = { realm: 'test realm' };

/** Every error class with its status and RFC 4918 element; a class missing here fails the last test. */
const CASES: Array<[DavgateError, number, string?]> = [
  [new errors.NotFoundError(), 404],
  [new errors.ForbiddenError('no'), 403],
  [new errors.ForbiddenPathError('reserved name'), 403],
  [new errors.ConflictError('no parent'), 409],
  [new errors.ExistsError(), 405],
  [new errors.NotADirectoryError(), 409],
  [new errors.IsADirectoryError(), 405],
  [new errors.MethodNotAllowedError('GET'), 405],
  [new errors.BadRequestError('bad'), 400],
  [new errors.BadXmlError('bad'), 400],
  [new errors.BadDepthError('bad'), 400],
  [new errors.BadDestinationError('bad'), 400],
  [new errors.IncompleteBodyError(), 400],
  [new errors.RangeNotSatisfiableError(10), 416],
  [new errors.PreconditionFailedError(), 412],
  [new errors.LengthRequiredError('no length'), 411],
  [new errors.BodyTooLargeError('big'), 413],
  [new errors.UnsupportedMediaTypeError('no body'), 415],
  [new errors.UriTooLongError('long'), 414],
  [new errors.NameTooLongError('long'), 414],
  [new errors.HeadersTooLargeError('many'), 431],
  [new errors.ReadOnlyError(), 403],
  [new errors.NotEmptyError(), 409],
  [new errors.FiniteDepthError(), 403, 'propfind-finite-depth'],
  [new errors.LockedError(), 423, 'lock-token-submitted'],
  [new errors.LockConflictError(), 423, 'no-conflicting-lock'],
  [new errors.LockTokenMismatchError(), 409, 'lock-token-matches-request-uri'],
  [new errors.ProtectedPropertyError('getetag'), 403, 'cannot-modify-protected-property'],
  [new errors.UnauthorizedError(), 401],
  [new errors.AuthRequiredError(), 401],
  [new errors.AdminTokenRequiredError(), 401],
  [new errors.NotifySecretRequiredError(), 401],
  [new errors.NotifySecretMismatchError(), 403],
  [new errors.TooManyLoginsError(30), 429],
  [new errors.UnsupportedError('quota'), 501],
  [new errors.UpstreamUnavailableError('down'), 502],
  [new errors.UpstreamTimeoutError('slow'), 504],
  [new errors.SharedStateUnavailableError(), 503],
  [new errors.CacheCorruptError('bad block'), 500],
  [new errors.InsufficientStorageError(), 507],
  [new errors.ConfigError('bad'), 500],
  [new errors.CacheInUseError('/c'), 500],
];

describe('errorResponse', () => {
  it('every class answers its status, and its element in a DAV:error body', () => {
    for (const [err, status, condition] of CASES) {
      const r = errorResponse(err, opts);
      assert.equal(r.status, status, err.name);
      if (condition) {
        assert.equal(r.contentType, 'application/xml; charset=utf-8', err.name);
        assert.equal(r.body, `<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:${condition}/></D:error>\n`, err.name);
      } else {
        assert.equal(r.contentType, 'text/plain; charset=utf-8', err.name);
        assert.equal(r.body, err.message + '\n', err.name);
      }
    }
  });

  it('shared state unavailable: 503 with Retry-After', () => {
    const r = errorResponse(new errors.SharedStateUnavailableError(), opts);
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '2');
  });

  it('every exported error class is covered above', () => {
    const covered = new Set(CASES.map(([e]) => e.constructor));
    const classes = Object.values(errors).filter((v): v is typeof DavgateError => typeof v === 'function' && v.prototype instanceof DavgateError);
    assert.ok(classes.length >= 30);
    for (const c of classes) assert.ok(covered.has(c), `${c.name} has no case`);
  });

  it('every code has a status; a bare DavgateError gets the element of its code', () => {
    for (const code of Object.keys(STATUS_BY_CODE) as ErrorCode[]) {
      const r = errorResponse(new DavgateError(code, 'x'), opts);
      assert.equal(r.status, STATUS_BY_CODE[code]);
      if (CONDITION_BY_CODE[code]) assert.match(r.body, new RegExp(`<D:${CONDITION_BY_CODE[code]}/>`), code);
    }
  });

  it('unknown errors are 500 without their message', () => {
    for (const err of [new Error('secret /etc/path at line 3'), new TypeError('x is undefined'), 'a string', undefined, { statusCode: 404 }]) {
      const r = errorResponse(err, opts);
      assert.equal(r.status, 500);
      assert.equal(r.body, 'internal error\n');
      assert.deepEqual(r.headers, {});
    }
  });

  it('messages are escaped in the text body', () => {
    assert.equal(errorResponse(new errors.ConflictError('<a> & b'), opts).body, '&lt;a&gt; &amp; b\n');
  });

  it('headers: the Basic challenge with the configured realm, Bearer for admin, Allow, Retry-After, Content-Range', () => {
    assert.equal(errorResponse(new errors.AuthRequiredError(), opts).headers['www-authenticate'], 'Basic realm="test realm", charset="UTF-8"');
    assert.equal(errorResponse(new errors.UnauthorizedError(), opts).headers['www-authenticate'], basicChallenge('test realm'), 'the upstream refusing pass-through credentials too');
    assert.equal(errorResponse(new errors.AdminTokenRequiredError(), opts).headers['www-authenticate'], 'Bearer realm="davgate admin"');
    assert.equal(errorResponse(new errors.MethodNotAllowedError('GET, HEAD'), opts).headers.allow, 'GET, HEAD');
    // Every 405 carries Allow: PUT to a collection lists no PUT, MKCOL on an existing name no MKCOL.
    const dirAllow = errorResponse(new errors.IsADirectoryError(), opts).headers.allow?.split(', ') ?? [];
    assert.ok(dirAllow.includes('PROPFIND') && !dirAllow.includes('PUT'), `PUT to a collection: ${dirAllow.join(', ')}`);
    const existsAllow = errorResponse(new errors.ExistsError(), opts).headers.allow?.split(', ') ?? [];
    assert.ok(existsAllow.includes('DELETE') && !existsAllow.includes('MKCOL'), `MKCOL on a name that exists: ${existsAllow.join(', ')}`);
    assert.equal(errorResponse(new errors.TooManyLoginsError(42), opts).headers['retry-after'], '42');
    assert.equal(errorResponse(new errors.RangeNotSatisfiableError(1234), opts).headers['content-range'], 'bytes */1234');
    assert.deepEqual(errorResponse(new errors.NotFoundError(), opts).headers, {});
  });
});

/** Just enough of a FastifyReply to see what sendError does with it. */
function fakeReply(sent = false) {
  const seen = { status: 0, headers: {} as Record<string, string>, type: '', body: undefined as unknown, logged: [] as unknown[], destroyed: false };
  const reply = {
    sent,
    raw: { headersSent: sent, destroy: () => { seen.destroyed = true; } },
    log: { error: (obj: unknown) => { seen.logged.push(obj); } },
    code(s: number) { seen.status = s; return reply; },
    headers(h: Record<string, string>) { Object.assign(seen.headers, h); return reply; },
    type(t: string) { seen.type = t; return reply; },
    send(b: unknown) { seen.body = b; return reply; },
  };
  return { reply: reply as unknown as Parameters<typeof sendError>[0], seen };
}

describe('sendError', () => {
  it('logs unknown errors and 5xx with the error itself (its stack), not 4xx', () => {
    const bug = new Error('boom');
    const a = fakeReply();
    sendError(a.reply, bug, opts);
    assert.equal(a.seen.status, 500);
    assert.deepEqual(a.seen.logged, [{ err: bug }]);
    const b = fakeReply();
    sendError(b.reply, new errors.UpstreamUnavailableError('down'), opts);
    assert.equal(b.seen.logged.length, 1);
    const c = fakeReply();
    sendError(c.reply, new errors.NotFoundError(), opts);
    assert.equal(c.seen.logged.length, 0);
    assert.equal(c.seen.status, 404);
    assert.equal(c.seen.body, 'resource not found\n');
  });

  it('once the headers are out, the connection is cut instead', () => {
    const r = fakeReply(true);
    sendError(r.reply, new errors.UpstreamTimeoutError('slow'), opts);
    assert.equal(r.seen.destroyed, true);
    assert.equal(r.seen.status, 0);
  });
});
