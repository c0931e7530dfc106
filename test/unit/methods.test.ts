import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ALLOW, CORS_METHODS, METHODS, METHOD_NAMES, allowFor, checkAccess, isMethod } from '../../src/gateway/methods.js';
import { ReadOnlyError } from '../../src/errors.js';
import type { GatewayContext } from '../../src/gateway/request.js';

const list = (allow: string) => allow.split(', ');

/** Runs the OPTIONS handler on a stub reply; `origin` stands for what the CORS hook set. */
async function options(reqHeaders: Record<string, string>, origin?: string): Promise<Record<string, unknown>> {
  const headers: Record<string, unknown> = origin ? { 'access-control-allow-origin': origin } : {};
  const reply = {
    code: () => reply,
    headers: (h: Record<string, unknown>) => { Object.assign(headers, h); return reply; },
    getHeader: (k: string) => headers[k],
    send: () => reply,
  };
  await METHODS.OPTIONS.handler({} as GatewayContext, { headers: reqHeaders } as never, reply as never);
  return headers;
}

describe('method table', () => {
  it('Allow for any URL lists every routed method, each once, in the table order', () => {
    assert.deepEqual(list(ALLOW), METHOD_NAMES);
    assert.equal(ALLOW, 'OPTIONS, GET, HEAD, PUT, PATCH, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK');
  });

  it('Allow for a collection has no PUT or MKCOL; for a file PUT but no MKCOL; for an unmapped URL only what creates', () => {
    const dir = list(allowFor('collection'));
    const file = list(allowFor('file'));
    assert.ok(!dir.includes('PUT') && !dir.includes('MKCOL'));
    assert.ok(file.includes('PUT') && !file.includes('MKCOL'));
    for (const m of ['GET', 'PROPFIND', 'DELETE', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'PROPPATCH']) assert.ok(dir.includes(m) && file.includes(m), m);
    assert.deepEqual(list(allowFor('unmapped')), ['OPTIONS', 'PUT', 'MKCOL', 'LOCK']);
  });

  it('read-only users: the read methods pass, every other method is refused, derived from the table', () => {
    const reads = METHOD_NAMES.filter((m) => METHODS[m].access === 'read');
    assert.deepEqual(reads.sort(), ['GET', 'HEAD', 'OPTIONS', 'PROPFIND']);
    for (const m of METHOD_NAMES) {
      if (reads.includes(m)) checkAccess(m, true);
      else assert.throws(() => checkAccess(m, true), ReadOnlyError, m);
      checkAccess(m, false);
    }
  });

  it('body kinds and lock checks', () => {
    assert.equal(METHODS.PUT.body, 'stream');
    for (const m of ['PROPFIND', 'PROPPATCH', 'LOCK'] as const) assert.equal(METHODS[m].body, 'xml', m);
    for (const m of METHOD_NAMES) {
      // Every write but UNLOCK (which names its lock in Lock-Token) evaluates the If header.
      assert.equal(METHODS[m].lockCheck, METHODS[m].access === 'write' && m !== 'UNLOCK', m);
    }
    assert.ok(isMethod('MKCOL'));
    assert.ok(!isMethod('POST') && !isMethod('constructor') && !isMethod('get'));
  });

  it('the CORS preflight allows exactly the routed methods, and only for an allowed origin', async () => {
    assert.deepEqual(list(CORS_METHODS).sort(), [...METHOD_NAMES].sort());
    const preflight = await options({ 'access-control-request-method': 'PROPFIND' }, 'https://app.example');
    assert.deepEqual(list(String(preflight['access-control-allow-methods'])).sort(), [...METHOD_NAMES].sort());
    assert.equal(preflight['access-control-max-age'], 600);
    assert.match(String(preflight['access-control-allow-headers']), /Depth/);
    const asked = await options({ 'access-control-request-method': 'PUT', 'access-control-request-headers': 'X-Custom' }, 'https://app.example');
    assert.equal(asked['access-control-allow-headers'], 'X-Custom');
    const plain = await options({ 'access-control-request-method': 'PROPFIND' });
    assert.equal(plain['access-control-allow-methods'], undefined, 'no CORS origin, no preflight answer');
    assert.equal(plain.allow, ALLOW);
    assert.equal(plain.dav, '1, 2, sabredav-partialupdate');
  });
});
