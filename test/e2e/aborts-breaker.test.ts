// What a client does to its own request must never count against the upstream: aborted reads and
// uploads leave the breaker closed and no upstream error counted; an upload refused by the
// upstream while its body is still arriving is reported as itself (409), not as a client abort.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startGatewayProcess, sleep, type GatewayProcess } from '../helpers/gateway-process.js';
import { raw } from '../helpers/http.js';

/** Start a request and destroy the connection once `after` is reached (first response byte, or body bytes sent). */
function abortedRequest(base: string, method: string, path: string, opts: { body?: number; headers?: Record<string, string | number> } = {}): Promise<void> {
  const u = new URL(base);
  return new Promise((resolve) => {
    const req = request({ host: u.hostname, port: Number(u.port), method, path, headers: opts.headers, agent: false }, (res) => {
      res.once('data', () => { req.destroy(); resolve(); });
      res.once('end', () => resolve());
    });
    req.on('error', () => resolve());
    req.on('close', () => resolve());
    if (opts.body) {
      // Half the promised body, then the client vanishes (ECONNRESET on the gateway's side).
      req.write(Buffer.alloc(opts.body, 1), () => setTimeout(() => req.destroy(), 5));
    } else {
      req.end();
    }
  });
}

function metric(text: string, name: string, labels = ''): number {
  const m = new RegExp(`^${name}${labels ? `\\{${labels}\\}` : ''} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

describe('client aborts and the upstream breaker', () => {
  let gw: GatewayProcess;
  before(async () => {
    gw = await startGatewayProcess({ args: ['--log-level', 'warn', '--ttl', '0', '--block-size', '64KiB'] });
    await writeFile(join(gw.upstreamDir, 'big.bin'), Buffer.alloc(8 * 1024 * 1024, 9));
  });
  after(async () => { await gw?.stop(); });

  test('1,000 aborted reads and 100 aborted uploads in a row leave the breaker closed', async () => {
    for (let i = 0; i < 1000; i += 10) {
      await Promise.all(Array.from({ length: 10 }, () => abortedRequest(gw.url, 'GET', '/big.bin')));
    }
    for (let i = 0; i < 100; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, j) => abortedRequest(gw.url, 'PUT', `/up-${i + j}.bin`, { body: 256 * 1024, headers: { 'content-length': 512 * 1024 } })));
    }
    await sleep(500);
    const m = await (await fetch(gw.adminUrl + 'metrics')).text();
    assert.equal(metric(m, 'davgate_upstream_breaker_state'), 0);
    assert.equal(metric(m, 'davgate_upstream_breaker_opens_total'), 0);
    assert.equal(metric(m, 'davgate_upstream_up'), 1);
    for (const op of ['read', 'write', 'stat']) assert.equal(metric(m, 'davgate_upstream_requests_total', `operation="${op}",result="error"`), 0, `${op} errors counted`);
    assert.ok(metric(m, 'davgate_upstream_requests_total', 'operation="write",result="client_abort"') > 0, 'aborted uploads not counted as client aborts');
    assert.ok(metric(m, 'davgate_client_aborts_total', 'method="GET"') >= 900);
    // Nothing of the cut uploads is visible, and ordinary clients are served.
    assert.deepEqual((await readdir(gw.upstreamDir)).filter((n) => n.startsWith('up-')), []);
    const res = await fetch(gw.url + 'big.bin');
    assert.equal(res.status, 200);
    assert.equal((await res.arrayBuffer()).byteLength, 8 * 1024 * 1024);
  });

  test('a PUT of 500 KB into a missing collection is 409 Conflict, not a client abort', async () => {
    const body = Buffer.alloc(500 * 1024, 2);
    const r = await raw(gw.url, 'PUT', '/no-such-dir/file.bin', { 'content-length': body.length }, body);
    assert.equal(r.status, 409, r.text);
    const chunked = await raw(gw.url, 'PUT', '/no-such-dir/file2.bin', { 'transfer-encoding': 'chunked' }, [body.subarray(0, 250_000), body.subarray(250_000)]);
    assert.equal(chunked.status, 409, chunked.text);
    await writeFile(join(gw.upstreamDir, 'plain'), 'x');
    const underFile = await raw(gw.url, 'PUT', '/plain/file.bin', { 'content-length': body.length }, body);
    assert.equal(underFile.status, 409, underFile.text);
  });

  test('DELETE of a file with Depth: 0 (lftp rm) deletes it; a collection still needs infinity', async () => {
    await writeFile(join(gw.upstreamDir, 'gone.txt'), 'x');
    assert.equal((await raw(gw.url, 'DELETE', '/gone.txt', { depth: '0' })).status, 204);
    assert.equal((await raw(gw.url, 'GET', '/gone.txt')).status, 404);
    assert.equal((await raw(gw.url, 'MKCOL', '/coll/')).status, 201);
    assert.equal((await raw(gw.url, 'DELETE', '/coll/', { depth: '0' })).status, 400);
    assert.equal((await raw(gw.url, 'DELETE', '/coll/', { depth: 'infinity' })).status, 204);
  });
});
