// Unparseable bytes after a valid request on the same connection (lftp writes a stray header line
// after a PROPPATCH body): the valid request is answered whole, then a 400, then the close.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

/** Write `data` on one connection and collect everything until the server closes it. */
function exchange(base: string, data: string): Promise<string> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname, () => s.write(data));
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => { out += c; });
    s.on('close', () => resolve(out));
    s.on('error', reject);
    s.setTimeout(10_000, () => { s.destroy(); reject(new Error(`no close within 10 s; got: ${out.slice(0, 300)}`)); });
  });
}

describe('bytes that do not parse, after a valid request', () => {
  let gw: GatewayProcess;
  before(async () => {
    gw = await startGatewayProcess({ args: ['--log-level', 'warn'] });
    await writeFile(join(gw.upstreamDir, 'f.txt'), 'x');
  });
  after(async () => { await gw?.stop(); });

  test('PROPPATCH followed by a stray header line: 207 first, then 400 and the close', async () => {
    const body = '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:color>blue</Z:color></D:prop></D:set></D:propertyupdate>';
    const out = await exchange(gw.url, `PROPPATCH /f.txt HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}X-Stray: header\r\n\r\n`);
    const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3}) [A-Za-z -]+\r\n/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['207', '400'], out.slice(0, 500));
    assert.match(out, /<Z:color|color/);
  });

  test('an answer with Connection: close is the last word: the bytes after it get no 400', async () => {
    // Node's own client sends a TRACE body without a length: those bytes follow a request that
    // asked for the close, and a second answer after it breaks the client's parser.
    const out = await exchange(gw.url, 'TRACE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n<x/>');
    const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3}) [A-Za-z -]+\r\n/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['405'], out.slice(0, 500));
  });

  test('two pipelined GETs then garbage: both answered in order, then 400', async () => {
    const out = await exchange(gw.url, 'GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n\x01\x02 garbage\r\n\r\n');
    assert.deepEqual([...out.matchAll(/HTTP\/1\.1 (\d{3}) [A-Za-z -]+\r\n/g)].map((m) => m[1]), ['200', '404', '400']);
  });

  test('garbage alone: 400 and the close, and the gateway serves the next client', async () => {
    const out = await exchange(gw.url, 'NOT HTTP AT ALL\r\n\r\n');
    assert.match(out, /^HTTP\/1\.1 400/);
    assert.equal((await fetch(gw.url + 'f.txt')).status, 200);
  });
});
