// Logs as an operator reads them: one JSON line per request with its request id (also sent as
// X-Request-Id), method, status, bytes, duration and cache result; a client that goes away is
// an info line, not an error. Passwords, Authorization headers and S3 secrets never appear in
// logs, metrics or `config check`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { MAIN_JS, freeDir, removeDir, sleep, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

const UPSTREAM_PW = 'upstream-Pa55-word-7319';
const CLIENT_PW = 'client-Pa55-word-8842';
const WRONG_PW = 'wrong-Pa55-word-5521';
const S3_SECRET = 's3SECRETkeyZZ9u8y7t6r5e4w3q2';
const basic = (user: string, pw: string) => 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64');
const SECRETS = [UPSTREAM_PW, CLIENT_PW, WRONG_PW, S3_SECRET, basic('carol', CLIENT_PW).slice(6), basic('carol', WRONG_PW).slice(6), basic('davgate', UPSTREAM_PW).slice(6)];

function assertNoSecret(where: string, text: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `${where} contains a secret (${s.slice(0, 6)}...)`);
}

interface LogLine { level: number; msg: string; reqId?: string; method?: string; url?: string; status?: number; bytes?: number; durationMs?: number; cache?: string }
const lines = (out: string): LogLine[] => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);

async function until<T>(what: string, fn: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('request logs and secrets', () => {
  let dir: string;
  let backend: GatewayProcess;
  let front: GatewayProcess;
  let configFile: string;
  const auth = { authorization: basic('carol', CLIENT_PW) };

  before(async () => {
    dir = await freeDir('davgate-logs');
    // The backend is another davgate, asking for the upstream account's password.
    await writeFile(join(dir, 'backend.htpasswd'), `davgate:${bcrypt.hashSync(UPSTREAM_PW, 4)}\n`);
    await writeFile(join(dir, 'front.htpasswd'), `carol:${bcrypt.hashSync(CLIENT_PW, 4)}\n`);
    backend = await startGatewayProcess({ args: ['--htpasswd', join(dir, 'backend.htpasswd'), '--log-level', 'warn'] });
    await writeFile(join(backend.upstreamDir, 'big.bin'), Buffer.alloc(32 * 1024 * 1024, 3));
    configFile = join(dir, 'front.yaml');
    await writeFile(configFile, [
      'upstream:', '  type: webdav', `  url: ${backend.url}`, '  username: davgate', `  password: ${UPSTREAM_PW}`,
      'auth:', `  htpasswd: ${join(dir, 'front.htpasswd')}`,
      'logLevel: info',
    ].join('\n') + '\n');
    // The helper passes --upstream DIR; a later --upstream wins, the file adds the credentials.
    front = await startGatewayProcess({ args: ['-c', configFile, '--upstream', backend.url] });
  });
  after(async () => {
    await front?.stop();
    await backend?.stop();
    await removeDir(dir);
  });

  test('one line per request: id, method, status, bytes, duration, cache result', async () => {
    const put = await fetch(front.url + 'f.txt', { method: 'PUT', headers: auth, body: 'x'.repeat(1000) });
    assert.equal(put.status, 201);
    const get1 = await fetch(front.url + 'f.txt', { headers: { ...auth, 'x-request-id': 'my-trace.42' } });
    assert.equal((await get1.text()).length, 1000);
    assert.equal(get1.headers.get('x-request-id'), 'my-trace.42', 'a sane X-Request-Id is kept');
    const get2 = await fetch(front.url + 'f.txt', { headers: auth });
    await get2.text();
    const id2 = get2.headers.get('x-request-id')!;
    assert.match(id2, /^[0-9a-f-]{36}$/);
    const bad = await fetch(front.url + 'f.txt', { headers: { ...auth, 'x-request-id': 'no spaces <allowed>' } });
    await bad.text();
    assert.notEqual(bad.headers.get('x-request-id'), 'no spaces <allowed>');

    const logged = await until('the log line of the second GET', () => lines(front.stdout()).find((l) => l.reqId === id2));
    assert.equal(logged.msg, 'request');
    assert.equal(logged.method, 'GET');
    assert.equal(logged.url, '/f.txt');
    assert.equal(logged.status, 200);
    assert.ok(logged.bytes! >= 1000 && logged.bytes! < 2000, `bytes ${logged.bytes}`);
    assert.equal(typeof logged.durationMs, 'number');
    assert.equal(logged.cache, 'hit');
    const first = lines(front.stdout()).find((l) => l.reqId === 'my-trace.42');
    assert.equal(first?.status, 200);
    assert.equal(lines(front.stdout()).filter((l) => l.reqId === id2).length, 1, 'exactly one line per request');
    const putLine = lines(front.stdout()).find((l) => l.method === 'PUT');
    assert.equal(putLine?.status, 201);
  });

  test('a client that goes away mid-download is an info line, not an error', async () => {
    const url = new URL(front.url + 'big.bin');
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, headers: auth }, (res) => {
        res.once('data', () => { req.destroy(); resolve(); });
      });
      req.on('error', (e) => { if (!req.destroyed) reject(e); });
      req.end();
    });
    const abort = await until('the client abort line', () => lines(front.stdout()).find((l) => l.msg === 'client abort' && l.url === '/big.bin'));
    assert.equal(abort.level, 30);
    await sleep(300);
    const errors = lines(front.stdout() + front.stderr()).filter((l) => l.level >= 40);
    assert.deepEqual(errors.map((l) => l.msg), []);
    const metrics = await (await fetch(front.adminUrl + 'metrics')).text();
    assert.match(metrics, /^davgate_client_aborts_total\{method="GET"\} 1$/m);
  });

  test('no password or Authorization header in logs or metrics, also after failures', async () => {
    const wrong = await fetch(front.url + 'f.txt', { headers: { authorization: basic('carol', WRONG_PW) } });
    assert.equal(wrong.status, 401);
    await wrong.text();
    await (await fetch(front.url + 'missing.txt', { headers: auth })).text();
    await (await fetch(front.url, { method: 'PROPFIND', headers: { ...auth, depth: '1' } })).text();
    await sleep(200);
    assertNoSecret('the log', front.stdout() + front.stderr());
    assertNoSecret('/metrics', await (await fetch(front.adminUrl + 'metrics')).text());
  });

  test('config check masks the upstream password, URL credentials and S3 secrets', async () => {
    const check = (file: string) => spawnSync(process.execPath, [MAIN_JS, 'config', 'check', '-c', file], { encoding: 'utf8' });
    const r = check(configFile);
    assert.equal(r.status, 0, r.stderr);
    assertNoSecret('config check', r.stdout + r.stderr);
    assert.match(r.stdout, /"password": "\*\*\*"/);
    const s3 = join(dir, 's3.yaml');
    await writeFile(s3, ['upstream:', '  type: s3', '  bucket: b', '  endpoint: http://127.0.0.1:9', '  accessKeyId: AKIAEXAMPLE', `  secretAccessKey: ${S3_SECRET}`].join('\n') + '\n');
    const r2 = check(s3);
    assert.equal(r2.status, 0, r2.stderr);
    assertNoSecret('config check (s3)', r2.stdout + r2.stderr);
    const inUrl = join(dir, 'url.yaml');
    await writeFile(inUrl, ['upstream:', '  type: webdav', `  url: http://davgate:${UPSTREAM_PW}@127.0.0.1:9/dav/`].join('\n') + '\n');
    const r3 = check(inUrl);
    assert.equal(r3.status, 0, r3.stderr);
    assertNoSecret('config check (URL credentials)', r3.stdout + r3.stderr);
  });

  test('an S3 upstream that fails: its secret stays out of the log', async () => {
    const s3 = join(dir, 's3-serve.yaml');
    await writeFile(s3, ['upstream:', '  type: s3', '  bucket: b', '  endpoint: http://127.0.0.1:9', '  accessKeyId: AKIAEXAMPLE', `  secretAccessKey: ${S3_SECRET}`,
      'upstreamPolicy:', '  retries: 0', '  timeout: 2s', 'logLevel: debug'].join('\n') + '\n');
    const gw = await startGatewayProcess({ args: ['-c', s3, '--upstream', 's3://b/'] });
    try {
      const res = await fetch(gw.url + 'x.txt');
      await res.text();
      assert.ok(res.status >= 500, `status ${res.status}`);
      await sleep(200);
      assertNoSecret('the log of a failing S3 gateway', gw.stdout() + gw.stderr());
    } finally {
      await gw.stop();
    }
  });
});
