// Hot reads answered in front of the routes (src/gateway/hot-read.ts): a GET or HEAD of a
// file whose bytes are in the memory tier is answered on the raw request, before fastify.
// It must answer exactly what the routes answer, take nothing it cannot answer in full, and
// be counted and logged like every other request.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import bcrypt from 'bcryptjs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/inproc.js';
import { sleep, startGatewayProcess } from '../helpers/gateway-process.js';
import { hotReadHandler, type FrontHandler } from '../../src/gateway/hot-read.js';
import type { GatewayContext } from '../../src/gateway/request.js';
import { loginFor } from '../../src/gateway/auth.js';
import type { Config } from '../../src/config.js';

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

function send(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Reads `name` until its block sits in the memory tier (the first read streams it, the next ones keep it). */
async function warm(gw: TestGateway, name: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    await send(gw.url + name);
    await gw.gateway.cache.flush();
    const node = gw.gateway.cache.peekNode('/' + name);
    if (node && gw.gateway.cache.rangeInMemory(node, 0, Math.max(0, node.size - 1))) return;
  }
  throw new Error(`${name} never reached the memory tier`);
}

const COMPARED = ['etag', 'last-modified', 'content-type', 'content-length', 'accept-ranges', 'content-range'];

/** A server that answers only through `front`, and 599 for whatever it leaves to the routes. */
async function frontOnly(front: FrontHandler): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    if (front(req, res)) return;
    req.resume();
    res.writeHead(599).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

describe('hot reads answered in front of the routes', () => {
  let gw: TestGateway;
  let ctx: GatewayContext;
  const small = randomBytes(4096);

  before(async () => {
    gw = await startGateway({ cache: { ttl: 60_000 } });
    await writeFile(join(gw.upstreamDir, 'small.txt'), small);
    await writeFile(join(gw.upstreamDir, 'empty.bin'), '');
    await writeFile(join(gw.upstreamDir, 'big.bin'), randomBytes(1024 * 1024)); // over memoryMaxBlockBytes
    await mkdir(join(gw.upstreamDir, 'dir'));
    await warm(gw, 'small.txt');
    await send(gw.url + 'empty.bin');
    await send(gw.url + 'big.bin');
    await send(gw.url + 'big.bin');
    ctx = { config: gw.config, cache: gw.gateway.cache, metrics: gw.gateway.metrics, state: undefined as never };
  });
  after(() => gw?.close());

  test('the same status, headers and bytes as the routes answer', async () => {
    const cases: Array<{ method: string; headers: Record<string, string> }> = [
      { method: 'GET', headers: {} },
      { method: 'GET', headers: { range: 'bytes=10-99' } },
      { method: 'GET', headers: { range: 'bytes=-5' } },
      { method: 'HEAD', headers: {} },
    ];
    for (const c of cases) {
      const front = await send(gw.url + 'small.txt', c);
      // inject() goes to fastify directly, never through the listener: the routes' answer.
      const routes = await gw.gateway.app.inject({ method: c.method as 'GET', url: '/small.txt', headers: c.headers });
      const what = `${c.method} ${JSON.stringify(c.headers)}`;
      assert.equal(front.status, routes.statusCode, what);
      for (const h of COMPARED) assert.equal(front.headers[h], routes.headers[h] === undefined ? undefined : String(routes.headers[h]), `${what}: ${h}`);
      assert.ok(front.body.equals(routes.rawPayload), what);
    }
    assert.ok((await send(gw.url + 'small.txt')).body.equals(small));
    assert.equal((await send(gw.url + 'empty.bin')).body.length, 0);
  });

  test('answers only what it can answer in full; everything else is left to the routes', async () => {
    const front = hotReadHandler(ctx, gw.gateway.app.log)!;
    const { url, server } = await frontOnly(front);
    try {
      const etag = (await send(url + 'small.txt')).headers.etag as string;
      assert.ok(etag, 'a hot GET is answered in front');
      assert.equal((await send(url + 'small.txt', { headers: { range: 'bytes=0-9' } })).status, 206);
      assert.equal((await send(url + 'small.txt', { method: 'HEAD' })).status, 200);
      assert.equal((await send(url + 'small.txt?x=1')).status, 200, 'a query is not part of the path');
      assert.equal((await send(url + 'empty.bin')).status, 200);
      const left: Array<[string, { method?: string; headers?: Record<string, string>; body?: string }]> = [
        ['small.txt', { headers: { 'if-none-match': etag } }], // 304: the routes answer it
        ['small.txt', { headers: { 'if-match': '"other"' } }], // 412
        ['small.txt', { headers: { range: 'bytes=99999-' } }], // 416
        ['small.txt', { method: 'GET', headers: { 'content-type': 'text/plain', 'content-length': '3' }, body: 'abc' }], // a body
        ['small.txt', { method: 'PUT', body: 'x' }],
        ['small.txt', { method: 'PROPFIND' }],
        ['small.txt/', {}],
        ['dir', {}],
        ['', {}],
        ['missing.txt', {}],
        ['big.bin', {}], // on the cache disk, not in memory
        ['%2e%2e/%2e%2e/etc/passwd', {}],
        ['a%00b', {}],
        ['x/'.repeat(300) + 'small.txt', {}], // beyond maxPathSegments
      ];
      for (const [path, opts] of left) assert.equal((await send(url + path, opts)).status, 599, `${opts.method ?? 'GET'} /${path.slice(0, 40)} ${JSON.stringify(opts.headers ?? {})}`);
    } finally {
      server.close();
    }
  });

  test('with Basic auth only recently verified, not rate-limited credentials are answered in front', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'davgate-front-auth-'));
    try {
      await writeFile(join(dir, 'users'), `ann:${bcrypt.hashSync('right-pw', 4)}\nbob:${bcrypt.hashSync('bob-pw', 4)}\n`);
      const withAuth: Config = { ...gw.config, auth: { ...gw.config.auth, htpasswd: join(dir, 'users') } };
      assert.equal(hotReadHandler({ ...ctx, config: withAuth }, gw.gateway.app.log), undefined, 'auth configured: no front without its logins');
      const login = loginFor(withAuth)!;
      const { url, server } = await frontOnly(hotReadHandler({ ...ctx, config: withAuth }, gw.gateway.app.log, login)!);
      const basic = (u: string, pw: string) => ({ authorization: 'Basic ' + Buffer.from(`${u}:${pw}`).toString('base64') });
      try {
        assert.equal((await send(url + 'small.txt')).status, 599, 'no credentials: the routes answer 401');
        assert.equal((await send(url + 'small.txt', { headers: basic('ann', 'right-pw') })).status, 599, 'not verified yet: bcrypt is the routes\' job');
        assert.ok(await login.auth.check(basic('ann', 'right-pw').authorization));
        assert.ok(await login.auth.check(basic('bob', 'bob-pw').authorization));
        const ok = await send(url + 'small.txt', { headers: basic('ann', 'right-pw') });
        assert.equal(ok.status, 200);
        assert.ok(ok.body.equals(small));
        assert.equal((await send(url + 'small.txt', { headers: basic('ann', 'wrong-pw') })).status, 599);
        // Failed logins block the user: the front refuses it too, even with verified credentials.
        for (let i = 0; i < gw.config.auth.maxFailures; i++) login.failures.failed(['user bob']);
        assert.equal((await send(url + 'small.txt', { headers: basic('bob', 'bob-pw') })).status, 599);
        assert.equal((await send(url + 'small.txt', { headers: basic('ann', 'right-pw') })).status, 200, 'another user is not');
      } finally {
        server.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a CORS request goes to the routes', async () => {
    const withCors: Config = { ...gw.config, webdav: { ...gw.config.webdav, corsOrigins: ['https://app.example'] } };
    const { url, server } = await frontOnly(hotReadHandler({ ...ctx, config: withCors }, gw.gateway.app.log)!);
    try {
      assert.equal((await send(url + 'small.txt')).status, 200);
      assert.equal((await send(url + 'small.txt', { headers: { origin: 'https://app.example' } })).status, 599);
    } finally {
      server.close();
    }
  });

  test('counted in the request metrics, with the client\'s request id', async () => {
    const count = async () => {
      const text = await (await fetch(gw.adminUrl + 'metrics')).text();
      return Number(/^davgate_requests_total\{method="GET",status="200"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const before = await count();
    for (let i = 0; i < 5; i++) assert.equal((await send(gw.url + 'small.txt')).status, 200);
    const traced = await send(gw.url + 'small.txt', { headers: { 'x-request-id': 'trace.front-1' } });
    assert.equal(traced.headers['x-request-id'], 'trace.front-1');
    assert.match(String((await send(gw.url + 'small.txt')).headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(await count(), before + 7);
  });
});

test('a hot read answered in front writes the same request log line', async () => {
  const gw = await startGatewayProcess({ args: ['--log-level', 'info', '--ttl', '60s'] });
  try {
    await writeFile(join(gw.upstreamDir, 'f.bin'), randomBytes(4096));
    for (let i = 0; i < 3; i++) {
      await send(gw.url + 'f.bin');
      await sleep(300); // the block is on the cache disk, then read into memory
    }
    const res = await send(gw.url + 'f.bin', { headers: { 'x-request-id': 'front-log-1' } });
    assert.equal(res.status, 200);
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 50 && !line; i++) {
      line = gw.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.reqId === 'front-log-1');
      if (!line) await sleep(50);
    }
    assert.ok(line, 'one line for the request');
    assert.equal(line.msg, 'request');
    assert.equal(line.method, 'GET');
    assert.equal(line.url, '/f.bin');
    assert.equal(line.status, 200);
    assert.equal(line.cache, 'hit');
    assert.ok((line.bytes as number) > 4096 && (line.bytes as number) < 5000, `bytes ${String(line.bytes)}`);
    assert.equal(typeof line.durationMs, 'number');
  } finally {
    await gw.stop();
  }
});
