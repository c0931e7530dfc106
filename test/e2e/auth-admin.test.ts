// Basic authentication (htpasswd, bcrypt, read-only users) and the admin listener
// (metrics without paths or user names, health, readiness, invalidation).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { startGateway, type TestGateway } from '../helpers/inproc.js';

const ALICE_PW = 'correct horse:battery staple'; // a colon in the password: only the first one separates
const BOB_PW = 'b0b-s3cret-pw';
const FILE = 'zz-unique-name.txt';

const basic = (user: string, pw: string) => 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64');
const ALICE = { authorization: basic('alice', ALICE_PW) };
const BOB = { authorization: basic('bob', BOB_PW) };

async function req(url: string, method: string, headers: Record<string, string> = {}, body?: string) {
  const res = await fetch(url, { method, headers, body });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The value of one sample of the Prometheus text format, or undefined. */
function sample(metrics: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const m = /^([^{\s]+)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string | undefined> = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x): [string, string | undefined] => [x[1] ?? '', x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('auth and admin', () => {
  let dir: string;
  let htpasswd: string;
  let gw: TestGateway;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'davgate-auth-'));
    htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, `# users\nalice:${bcrypt.hashSync(ALICE_PW, 8)}\nbob:${bcrypt.hashSync(BOB_PW, 8)}\n`);
    gw = await startGateway({ auth: { htpasswd, readOnlyUsers: ['bob'] }, cache: { ttl: 60_000 } });
    await writeFile(join(gw.upstreamDir, 'existing.txt'), 'already here\n');
    await mkdir(join(gw.upstreamDir, 'sub'));
  });

  after(async () => {
    await gw?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('OPTIONS / without credentials → 200 with DAV and MS-Author-Via', async () => {
    const res = await req(gw.url, 'OPTIONS');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('dav'), '1, 2, sabredav-partialupdate');
    assert.equal(res.headers.get('ms-author-via'), 'DAV');
  });

  test('without or with wrong credentials: 401 with a Basic challenge, and nothing reaches the upstream', async () => {
    gw.upstream.reset();
    const cases: Array<[string, Record<string, string>]> = [
      ['none', {}],
      ['wrong password', { authorization: basic('alice', 'wrong') }],
      ['password of another user', { authorization: basic('alice', BOB_PW) }],
      ['unknown user', { authorization: basic('mallory', ALICE_PW) }],
      ['only the password part before the colon', { authorization: basic('alice', ALICE_PW.split(':')[0]!) }],
      ['empty user', { authorization: basic('', ALICE_PW) }],
      ['not Basic', { authorization: 'Bearer abc' }],
      ['garbage base64', { authorization: 'Basic !!!###' }],
    ];
    for (const [what, headers] of cases) {
      const res = await req(gw.url, 'PROPFIND', { ...headers, depth: '1' });
      assert.equal(res.status, 401, `PROPFIND, ${what}`);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="[^"]+"/, what);
      assert.ok(!res.text.includes('existing.txt'), `PROPFIND listing leaked (${what})`);
    }
    for (const method of ['GET', 'PUT', 'DELETE', 'MKCOL']) {
      const res = await req(gw.url + 'unauth-' + method, method, {}, method === 'PUT' ? 'x' : undefined);
      assert.equal(res.status, 401, `${method} without credentials`);
    }
    assert.equal([...gw.upstream.calls.values()].reduce((a, b) => a + b, 0), 0, `upstream calls: ${JSON.stringify([...gw.upstream.calls])}`);
    assert.deepEqual((await readdir(gw.upstreamDir)).sort(), ['existing.txt', 'sub']);
  });

  test('alice can PUT and GET', async () => {
    const put = await req(gw.url + FILE, 'PUT', ALICE, 'hello from alice\n');
    assert.equal(put.status, 201);
    assert.equal(await readFile(join(gw.upstreamDir, FILE), 'utf8'), 'hello from alice\n');
    const get = await req(gw.url + FILE, 'GET', ALICE);
    assert.equal(get.status, 200);
    assert.equal(get.text, 'hello from alice\n');
    const mk = await req(gw.url + 'alice-dir', 'MKCOL', ALICE);
    assert.equal(mk.status, 201);
    const del = await req(gw.url + 'alice-dir', 'DELETE', ALICE);
    assert.equal(del.status, 204);
  });

  test('bob (read-only) can GET and PROPFIND, but every write is 403 and nothing changes upstream', async () => {
    const get = await req(gw.url + 'existing.txt', 'GET', BOB);
    assert.equal(get.status, 200);
    assert.equal(get.text, 'already here\n');
    const pf = await req(gw.url, 'PROPFIND', { ...BOB, depth: '1' });
    assert.equal(pf.status, 207);
    assert.match(pf.text, /existing\.txt/);
    const head = await req(gw.url + 'existing.txt', 'HEAD', BOB);
    assert.equal(head.status, 200);

    const before = (await readdir(gw.upstreamDir)).sort();
    gw.upstream.reset();
    const writes: Array<[string, string, Record<string, string>, string?]> = [
      ['PUT', 'bob-new.txt', {}, 'bob was here'],
      ['PUT', 'existing.txt', {}, 'bob overwrote this'],
      ['DELETE', 'existing.txt', {}],
      ['DELETE', 'sub', {}],
      ['MKCOL', 'bob-dir', {}],
      ['MOVE', 'existing.txt', { destination: '/moved-by-bob.txt' }],
      ['COPY', 'existing.txt', { destination: '/copied-by-bob.txt' }],
      ['PROPPATCH', 'existing.txt', { 'content-type': 'application/xml' }, '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:x>1</Z:x></D:prop></D:set></D:propertyupdate>'],
      ['LOCK', 'existing.txt', { 'content-type': 'application/xml' }, '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>'],
    ];
    for (const [method, name, headers, body] of writes) {
      const res = await req(gw.url + name, method, { ...BOB, ...headers }, body);
      assert.equal(res.status, 403, `bob ${method} /${name}`);
    }
    for (const op of ['write', 'remove', 'mkdir', 'move', 'copy', 'setmtime']) assert.equal(gw.upstream.count(op), 0, `bob caused an upstream ${op}`);
    assert.deepEqual((await readdir(gw.upstreamDir)).sort(), before);
    assert.equal(await readFile(join(gw.upstreamDir, 'existing.txt'), 'utf8'), 'already here\n');
    // A lock bob could not take must not block alice either.
    const put = await req(gw.url + 'existing.txt', 'PUT', ALICE, 'alice still can\n');
    assert.equal(put.status, 204);
  });

  test('admin /metrics: the documented families, default metrics, and no paths, users or passwords', async () => {
    // Traffic that would put the path into labels if anything labelled by path.
    await req(gw.url + FILE, 'GET', ALICE);
    await req(gw.url + FILE, 'GET', ALICE);
    await req(gw.url + FILE, 'PROPFIND', { ...ALICE, depth: '0' });
    await req(gw.url + 'missing-' + FILE, 'GET', ALICE);
    await req(gw.url + FILE, 'GET', { authorization: basic('alice', 'wrong') });
    await sleep(50); // requests are counted when the response closes
    const res = await req(gw.adminUrl + 'metrics', 'GET');
    assert.equal(res.status, 200);
    const m = res.text;
    for (const name of ['davgate_requests_total', 'davgate_request_duration_seconds', 'davgate_cache_block_requests_total',
      'davgate_served_bytes_total', 'davgate_upstream_requests_total', 'process_cpu_seconds_total']) {
      assert.match(m, new RegExp(`^# TYPE ${name} `, 'm'), `${name} missing`);
    }
    assert.ok((sample(m, 'davgate_requests_total', { method: 'PUT', status: '201' }) ?? 0) >= 1, 'PUT 201 not counted');
    assert.ok((sample(m, 'davgate_requests_total', { method: 'GET', status: '200' }) ?? 0) >= 2, 'GET 200 not counted');
    assert.ok((sample(m, 'davgate_requests_total', { method: 'PROPFIND', status: '401' }) ?? 0) >= 1, '401 not counted');
    assert.ok((sample(m, 'davgate_request_duration_seconds_count', { method: 'GET' }) ?? 0) >= 2);
    assert.ok((sample(m, 'davgate_cache_block_requests_total', { result: 'miss' }) ?? 0) >= 1, 'no block miss counted');
    assert.ok((sample(m, 'davgate_cache_block_requests_total', { result: 'hit' }) ?? 0) >= 1, 'no block hit counted');
    assert.ok((sample(m, 'davgate_served_bytes_total', { source: 'cache' }) ?? 0) >= 'hello from alice\n'.length);
    assert.ok((sample(m, 'davgate_upstream_requests_total', { operation: 'write', result: 'ok' }) ?? 0) >= 1);
    for (const secret of [FILE, 'zz-unique-name', 'existing.txt', 'alice', 'bob', 'mallory', ALICE_PW, BOB_PW, 'battery', gw.upstreamDir]) {
      assert.ok(!m.includes(secret), `metrics contain ${JSON.stringify(secret)}`);
    }
  });

  test('admin /healthz and /readyz → 200', async () => {
    const h = await req(gw.adminUrl + 'healthz', 'GET');
    assert.equal(h.status, 200);
    const r = await req(gw.adminUrl + 'readyz', 'GET');
    assert.equal(r.status, 200);
  });

  test('admin endpoints are not in the WebDAV namespace', async () => {
    const res = await req(gw.url + 'metrics', 'GET', ALICE);
    assert.equal(res.status, 404);
    assert.ok(!res.text.includes('davgate_requests_total'));
  });

  test('POST /invalidate?path= returns JSON with invalidated and makes the next read revalidate', async () => {
    const get1 = await req(gw.url + FILE, 'GET', ALICE);
    assert.equal(get1.status, 200);
    gw.upstream.reset();
    await req(gw.url + FILE, 'GET', ALICE);
    assert.equal(gw.upstream.count('stat'), 0, 'within the TTL a GET must not stat upstream (precondition)');
    const inv = await fetch(gw.adminUrl + 'invalidate?path=/' + FILE, { method: 'POST' });
    assert.equal(inv.status, 200);
    assert.match(inv.headers.get('content-type') ?? '', /application\/json/);
    const json = await inv.json() as { invalidated: unknown; path: unknown };
    assert.equal(typeof json.invalidated, 'number');
    assert.ok((json.invalidated as number) >= 1, `invalidated ${String(json.invalidated)}`);
    assert.equal(json.path, '/' + FILE);
    await req(gw.url + FILE, 'GET', ALICE);
    assert.ok(gw.upstream.count('stat') >= 1, 'after invalidation the node was not revalidated');

    const x = await fetch(gw.adminUrl + 'invalidate?path=/x', { method: 'POST' });
    assert.equal(x.status, 200);
    const xj = await x.json() as { invalidated: unknown };
    assert.equal(xj.invalidated, 0);
    const bad = await fetch(gw.adminUrl + 'invalidate?path=/../etc', { method: 'POST' });
    assert.equal(bad.status, 400);
  });
});

describe('readiness follows the upstream', () => {
  let gw: TestGateway;
  let upstreamDir: string;

  before(async () => {
    upstreamDir = await mkdtemp(join(tmpdir(), 'davgate-ready-'));
    gw = await startGateway({}, { upstreamDir });
  });
  after(async () => {
    await gw?.close();
    await rm(upstreamDir, { recursive: true, force: true });
  });

  test('/readyz is 200, then 503 once the upstream directory is gone; /healthz stays 200', async () => {
    assert.equal((await req(gw.adminUrl + 'readyz', 'GET')).status, 200);
    await rm(upstreamDir, { recursive: true, force: true });
    assert.equal(existsSync(upstreamDir), false);
    const r = await req(gw.adminUrl + 'readyz', 'GET');
    assert.equal(r.status, 503);
    assert.equal((await req(gw.adminUrl + 'healthz', 'GET')).status, 200);
  });
});
