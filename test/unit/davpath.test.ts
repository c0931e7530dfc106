// Canonical DAV paths: decoded exactly once, traversal and control bytes refused, hrefs
// encoded so that decoding them gives the path back.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalFromUrlPath, canonicalPath, encodeHref, isWithin, joinPath, nameOf, parentOf } from '../../src/davpath.js';
import { BadRequestError, ForbiddenPathError } from '../../src/errors.js';

describe('canonicalPath', () => {
  test('collapses duplicate slashes, "." segments and a trailing slash', () => {
    assert.equal(canonicalPath('/'), '/');
    assert.equal(canonicalPath(''), '/');
    assert.equal(canonicalPath('//'), '/');
    assert.equal(canonicalPath('/a//b///c'), '/a/b/c');
    assert.equal(canonicalPath('/a/./b/.'), '/a/b');
    assert.equal(canonicalPath('/a/b/'), '/a/b');
    assert.equal(canonicalPath('a/b'), '/a/b');
  });

  test('".." is refused wherever it appears, not resolved', () => {
    for (const p of ['/..', '/../x', '/a/..', '/a/../b', '/a/b/../../..', '..', '//..//x']) {
      assert.throws(() => canonicalPath(p), ForbiddenPathError, p);
    }
    // Names that merely contain dots are fine.
    assert.equal(canonicalPath('/..a/b..'), '/..a/b..');
    assert.equal(canonicalPath('/.../x'), '/.../x');
    assert.equal(canonicalPath('/.hidden'), '/.hidden');
  });

  test('NUL and backslash are refused', () => {
    assert.throws(() => canonicalPath('/a\0b'), ForbiddenPathError);
    assert.throws(() => canonicalPath('/\0'), ForbiddenPathError);
    assert.throws(() => canonicalPath('/a\\b'), ForbiddenPathError);
    assert.throws(() => canonicalPath('/..\\x'), ForbiddenPathError);
  });
});

describe('canonicalFromUrlPath', () => {
  test('decodes exactly once', () => {
    assert.equal(canonicalFromUrlPath('/a%20b'), '/a b');
    assert.equal(canonicalFromUrlPath('/%C3%A9t%C3%A9'), '/été');
    assert.equal(canonicalFromUrlPath('/%252e%252e/x'), '/%2e%2e/x', 'double encoding is a literal name, not traversal');
    assert.equal(canonicalFromUrlPath('/100%25'), '/100%');
    assert.equal(canonicalFromUrlPath('/a//b/'), '/a/b');
  });

  test('encoded traversal is refused', () => {
    for (const p of ['/%2e%2e', '/%2e%2e/secret', '/%2E%2E/secret', '/%2e./x', '/.%2e/x', '/%2E%2E%2Fsecret', '/a/..%2f..%2fsecret', '/a/%2e%2e', '/../x']) {
      assert.throws(() => canonicalFromUrlPath(p), ForbiddenPathError, p);
    }
  });

  test('encoded NUL and backslash are refused', () => {
    assert.throws(() => canonicalFromUrlPath('/%00x'), ForbiddenPathError);
    assert.throws(() => canonicalFromUrlPath('/a%5cb'), ForbiddenPathError);
    assert.throws(() => canonicalFromUrlPath('/..%5Cx'), ForbiddenPathError);
  });

  test('malformed percent-encoding is a BadRequestError', () => {
    for (const p of ['/%', '/a%2', '/%zz', '/%G0', '/%C3', '/%E2%82', '/%FF', '/%C0%AE%C0%AE/x']) {
      const err = (() => { try { canonicalFromUrlPath(p); } catch (e) { return e; } return undefined; })();
      assert.ok(err instanceof BadRequestError, `${p}: ${String(err)}`);
      assert.equal((err).code, 'DAVGATE_BAD_REQUEST');
    }
  });
});

describe('encodeHref', () => {
  test('escapes are upper-case and only unreserved characters stay literal', () => {
    const names = ['/a b', '/#frag', '/50%', '/été', '/日本語/ファイル.txt', "/it's (1)!*", '/a?b', '/a&b=c;d', '/tab\there', '/emoji-😀', '/+plus', '/~tilde_-.'];
    for (const p of names) {
      const href = encodeHref(p);
      assert.doesNotMatch(href, /%(?:[a-f][0-9A-Fa-f]|[0-9A-Fa-f][a-f])/, `lower-case escape in ${href}`);
      assert.match(href, /^[A-Za-z0-9\-._~/%]*$/, `unescaped reserved character in ${href}`);
    }
    assert.equal(encodeHref('/a b'), '/a%20b');
    assert.equal(encodeHref('/#'), '/%23');
    assert.equal(encodeHref('/%'), '/%25');
    assert.equal(encodeHref('/é'), '/%C3%A9');
    assert.equal(encodeHref("/it's(1)!*"), '/it%27s%281%29%21%2A');
    assert.equal(encodeHref('/~a_b-c.d'), '/~a_b-c.d');
    assert.equal(encodeHref('/'), '/');
    assert.equal(encodeHref('/dir/sub'), '/dir/sub', 'slashes between segments stay');
  });

  test('round-trips through canonicalFromUrlPath', () => {
    for (const p of ['/a b', '/#', '/%', '/%25', '/%2e%2e', '/100% sure #1', '/été/日本語', '/emoji 😀', "/it's (1)!*", '/a?b', '/dir/with space/x#y%z']) {
      assert.equal(canonicalFromUrlPath(encodeHref(p)), p, p);
    }
  });
});

describe('path helpers', () => {
  test('parentOf, nameOf, joinPath', () => {
    assert.equal(parentOf('/'), '/');
    assert.equal(parentOf('/a'), '/');
    assert.equal(parentOf('/a/b'), '/a');
    assert.equal(nameOf('/a/b c'), 'b c');
    assert.equal(nameOf('/'), '');
    assert.equal(joinPath('/', 'x'), '/x');
    assert.equal(joinPath('/a', 'x'), '/a/x');
  });

  test('isWithin compares whole segments', () => {
    assert.equal(isWithin('/a', '/a'), true);
    assert.equal(isWithin('/a/b', '/a'), true);
    assert.equal(isWithin('/ab', '/a'), false);
    assert.equal(isWithin('/a', '/a/b'), false);
    assert.equal(isWithin('/anything', '/'), true);
  });
});
