// Limits checked before work: requests that once answered 500 or pinned a core now get a clear
// 4xx at once, and the gateway stays healthy for everyone else.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { raw } from '../helpers/http.js';

const nested = (open: string, close: string, depth: number, inner = '') => open.repeat(depth) + inner + close.repeat(depth);
const propertyupdate = (depth: number) => `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:p xmlns:x="urn:x">${nested('<a>', '</a>', depth)}</x:p></D:prop></D:set></D:propertyupdate>`;
const lockinfo = (depth: number) => `<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>${nested('<a>', '</a>', depth)}</D:owner></D:lockinfo>`;
const propfind = (depth: number) => `<?xml version="1.0"?><D:propfind xmlns:D="DAV:">${nested('<a>', '</a>', depth)}</D:propfind>`;

describe('limits checked before work', () => {
  let gw: GatewayProcess;
  before(async () => {
    gw = await startGatewayProcess({ args: ['--log-level', 'warn'] });
    await writeFile(join(gw.upstreamDir, 'f.txt'), 'hello\n');
  });
  after(async () => { await gw?.stop(); });

  const send = (method: string, path: string, headers: Record<string, string | number> = {}, body?: string) => raw(gw.url, method, path, headers, body, 10_000);

  test('XML nested 10k deep in PROPPATCH and LOCK, 40k deep in PROPFIND: 400, not 500 or a stalled core', async () => {
    for (const [method, body] of [['PROPPATCH', propertyupdate(10_000)], ['LOCK', lockinfo(10_000)], ['PROPFIND', propfind(40_000)], ['PROPFIND', propfind(100_000)]] as const) {
      const r = await send(method, '/f.txt', { 'content-type': 'application/xml' }, body);
      assert.equal(r.status, 400, `${method}: ${r.text}`);
      assert.match(r.text, /nested deeper than 64/);
    }
    // Within the limit, a dead property of nested XML is stored and comes back.
    const ok = await send('PROPPATCH', '/f.txt', { 'content-type': 'application/xml' }, propertyupdate(40));
    assert.equal(ok.status, 207);
  });

  test('an XML body of too many elements: 413', async () => {
    const body = `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>${'<x:a xmlns:x="urn:x"/>'.repeat(20_000)}</D:prop></D:propfind>`;
    const r = await send('PROPFIND', '/f.txt', { 'content-type': 'application/xml', depth: '0' }, body);
    assert.equal(r.status, 413, r.text);
  });

  test('unknown and bodiless methods: 405 or 400, never 500', async () => {
    for (const m of ['QUERY', 'SEARCH', 'TRACE', 'BIND', 'REPORT', 'MKCALENDAR', 'ACL', 'VERSION-CONTROL']) {
      const r = await send(m, '/');
      assert.ok(r.status === 405 || r.status === 400 || r.status === 501, `${m}: ${r.status}`);
      const withBody = await send(m, '/', { 'content-type': 'application/xml' }, '<x/>');
      assert.ok(withBody.status >= 400 && withBody.status < 500, `${m} with a body: ${withBody.status}`);
    }
    for (const m of ['PROPFIND', 'PROPPATCH', 'LOCK']) {
      const r = await send(m, '/f.txt', { 'content-type': 'text/plain' }, 'not xml at all');
      assert.ok(r.status >= 400 && r.status < 500, `${m} with a wrong body: ${r.status}`);
    }
  });

  test('URL length and path segments: 414; header fields: 431', async () => {
    const many = '/a'.repeat(7000);
    assert.equal((await send('GET', many)).status, 414);
    assert.equal((await send('PROPFIND', '/a'.repeat(300), { depth: '0' })).status, 414);
    assert.equal((await send('GET', '/' + 'x'.repeat(9000))).status, 414);
    const headers: Record<string, string> = {};
    for (let i = 0; i < 150; i++) headers[`x-h${i}`] = '1';
    assert.equal((await send('GET', '/f.txt', headers)).status, 431);
    assert.equal((await send('GET', '/f.txt')).status, 200);
  });

  test('none of it was a 500, and the gateway answers', async () => {
    const metrics = await (await fetch(gw.adminUrl + 'metrics')).text();
    assert.match(metrics, /^davgate_internal_errors_total 0$/m);
    assert.doesNotMatch(metrics, /^davgate_requests_total\{[^}]*status="500"\}/m);
    assert.equal((await send('GET', '/f.txt')).text, 'hello\n');
    assert.ok(gw.alive());
  });
});
