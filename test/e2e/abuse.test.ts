// Brute force and an exposed admin listener: failed logins are limited per client address and
// per user (429 with Retry-After, counted), unknown users cost what known ones cost, and the
// admin listener wants its bearer token.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { MAIN_JS, freeDir, removeDir, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

const basic = (user: string, pw: string) => 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64');

/** GET from a chosen loopback source address (127.0.0.x: another client). */
function getFrom(base: string, localAddress: string, headers: Record<string, string>): Promise<{ status: number; retryAfter?: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: Number(u.port), path: '/', headers, localAddress, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('failed logins are rate limited', () => {
  let dir: string;
  let gw: GatewayProcess;
  before(async () => {
    dir = await freeDir('davgate-abuse');
    await writeFile(join(dir, 'users'), `alice:${bcrypt.hashSync('alice-pw', 4)}\nbob:${bcrypt.hashSync('bob-pw', 4)}\n`);
    await writeFile(join(dir, 'c.yaml'), 'auth:\n  maxFailures: 5\n  failureWindow: 30s\n');
    gw = await startGatewayProcess({ args: ['-c', join(dir, 'c.yaml'), '--htpasswd', join(dir, 'users'), '--log-level', 'warn'] });
  });
  after(async () => {
    await gw?.stop();
    await removeDir(dir);
  });

  test('five wrong passwords from one address, then 429 with Retry-After, even for the right one', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await getFrom(gw.url, '127.0.0.2', { authorization: basic('alice', `guess-${i}`) })).status, 401);
    const blocked = await getFrom(gw.url, '127.0.0.2', { authorization: basic('alice', 'alice-pw') });
    assert.equal(blocked.status, 429);
    assert.ok(Number(blocked.retryAfter) > 0 && Number(blocked.retryAfter) <= 30, `Retry-After ${blocked.retryAfter}`);
    // Requests without credentials are how clients learn the realm: never a failure, never blocked.
    assert.equal((await getFrom(gw.url, '127.0.0.2', {})).status, 401);
  });

  test('the user attacked is limited from every address; other users and addresses are not', async () => {
    assert.equal((await getFrom(gw.url, '127.0.0.3', { authorization: basic('alice', 'alice-pw') })).status, 429, 'alice is under attack');
    assert.equal((await getFrom(gw.url, '127.0.0.3', { authorization: basic('bob', 'bob-pw') })).status, 200);
    assert.equal((await getFrom(gw.url, '127.0.0.4', { authorization: basic('bob', 'bob-pw') })).status, 200);
  });

  test('unknown users are refused like wrong passwords, and both are counted', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await getFrom(gw.url, '127.0.0.5', { authorization: basic(`nobody${i}`, 'x') })).status, 401);
    const m = await (await fetch(gw.adminUrl + 'metrics')).text();
    assert.match(m, /^davgate_auth_failures_total\{reason="bad_credentials"\} 8$/m);
    assert.match(m, /^davgate_auth_failures_total\{reason="rate_limited"\} 2$/m);
  });
});

describe('the admin listener wants its token', () => {
  const TOKEN = 'admin-token-0123456789abcdef';
  let gw: GatewayProcess;
  before(async () => {
    gw = await startGatewayProcess({ args: ['--log-level', 'warn'], env: { DAVGATE_ADMIN_TOKEN: TOKEN } });
  });
  after(async () => { await gw?.stop(); });

  test('health is open; metrics, invalidate and cache maintenance need the bearer token', async () => {
    assert.equal((await fetch(gw.adminUrl + 'healthz')).status, 200);
    assert.equal((await fetch(gw.adminUrl + 'metrics')).status, 401);
    assert.equal((await fetch(gw.adminUrl + 'invalidate', { method: 'POST' })).status, 401);
    assert.equal((await fetch(gw.adminUrl + 'cache/purge', { method: 'POST', headers: { authorization: 'Bearer wrong-token-000000000' } })).status, 401);
    const auth = { authorization: `Bearer ${TOKEN}` };
    assert.equal((await fetch(gw.adminUrl + 'metrics', { headers: auth })).status, 200);
    assert.equal((await fetch(gw.adminUrl + 'invalidate', { method: 'POST', headers: auth })).status, 200);
  });

  test('the cache CLI sends the token it is configured with', () => {
    const run = (env: Record<string, string>) => spawnSync(process.execPath, [MAIN_JS, 'cache', 'stats', '--json', '--cache', gw.cacheDir], { encoding: 'utf8', env: { ...process.env, ...env } });
    const ok = run({ DAVGATE_ADMIN_TOKEN: TOKEN });
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { running: boolean }).running, true);
    const without = run({});
    assert.notEqual(without.status, 0);
    assert.match(without.stderr, /401/);
  });

  test('beyond loopback the admin listener refuses to start without a token', () => {
    const r = spawnSync(process.execPath, [MAIN_JS, 'config', 'check', '--admin-listen', '0.0.0.0:9180'], { encoding: 'utf8', env: { ...process.env, DAVGATE_ADMIN_TOKEN: '' } });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /admin\.listen: 0\.0\.0\.0:9180 is not loopback/);
    const shown = spawnSync(process.execPath, [MAIN_JS, 'config', 'check', '--admin-listen', '0.0.0.0:9180'], { encoding: 'utf8', env: { ...process.env, DAVGATE_ADMIN_TOKEN: TOKEN } });
    assert.equal(shown.status, 0, shown.stderr);
    assert.ok(!shown.stdout.includes(TOKEN), 'config check shows the token');
  });
});

describe('slow and greedy clients', () => {
  let dir: string;
  let gw: GatewayProcess;
  before(async () => {
    dir = await freeDir('davgate-slow');
    await writeFile(join(dir, 'c.yaml'), 'webdav:\n  headersTimeout: 2s\n  idleTimeout: 3s\n  maxConnectionsPerClient: 5\n');
    gw = await startGatewayProcess({ args: ['-c', join(dir, 'c.yaml'), '--log-level', 'warn'] });
  });
  after(async () => {
    await gw?.stop();
    await removeDir(dir);
  });

  /** A socket from `localAddress`, resolved with what the server wrote once it closes it. */
  function open(localAddress: string, onOpen: (s: Socket) => void): Promise<{ out: string; seconds: number }> {
    const u = new URL(gw.url);
    const t0 = Date.now();
    return new Promise((resolve, reject) => {
      const s = connect({ host: u.hostname, port: Number(u.port), localAddress }, () => onOpen(s));
      let out = '';
      s.setEncoding('utf8').on('data', (c: string) => { out += c; });
      s.on('close', () => resolve({ out, seconds: (Date.now() - t0) / 1000 }));
      s.on('error', reject);
    });
  }

  test('headers trickled a line a second (slowloris) are cut with 408 after headersTimeout', async () => {
    let timer: NodeJS.Timeout | undefined;
    const r = await open('127.0.0.6', (s) => {
      s.write('GET / HTTP/1.1\r\nHost: x\r\n');
      timer = setInterval(() => { if (!s.destroyed) s.write('X-Slow: 1\r\n'); }, 500);
    });
    clearInterval(timer);
    assert.match(r.out, /^HTTP\/1\.1 408/);
    assert.ok(r.seconds < 10, `held for ${r.seconds} s`);
  });

  test('an upload that keeps moving outlasts both timeouts', async () => {
    const chunks = 10;
    const r = await open('127.0.0.7', (s) => {
      s.write(`PUT /slow.bin HTTP/1.1\r\nHost: x\r\nContent-Length: ${chunks * 1000}\r\nConnection: close\r\n\r\n`);
      let sent = 0;
      const timer = setInterval(() => {
        s.write(Buffer.alloc(1000, 0x61));
        if (++sent === chunks) clearInterval(timer);
      }, 500); // 5 s in all: longer than headersTimeout and idleTimeout
    });
    assert.match(r.out, /^HTTP\/1\.1 201/);
    assert.equal((await fetch(gw.url + 'slow.bin')).headers.get('content-length'), String(chunks * 1000));
  });

  test('one address gets maxConnectionsPerClient connections; the next is refused with 503, others are served', async () => {
    const u = new URL(gw.url);
    const held: Socket[] = [];
    for (let i = 0; i < 5; i++) {
      held.push(await new Promise((resolve) => { const s: Socket = connect({ host: u.hostname, port: Number(u.port), localAddress: '127.0.0.8' }, () => resolve(s)); }));
    }
    try {
      const refused = await open('127.0.0.8', (s) => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      assert.match(refused.out, /^HTTP\/1\.1 503/);
      const other = await open('127.0.0.9', (s) => s.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      assert.match(other.out, /^HTTP\/1\.1 200/);
      const m = await (await fetch(gw.adminUrl + 'metrics')).text();
      assert.match(m, /^davgate_connections_refused_total 1$/m);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
