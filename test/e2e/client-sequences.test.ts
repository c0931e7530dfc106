// Real clients' request sequences, replayed against a fresh gateway: the Windows WebDAV
// Mini-Redirector (test/fixtures/windows-explorer.json, written from [MS-WDV]/[MS-WDVSE]/[MS-WDVME])
// and macOS Finder over Apple's WebDAV FS (test/fixtures/macos-finder.json, written from the
// webdavfs sources). Every step's expectations are checked, then the upstream directory.
//
// Also here, the gateway behaviour those clients depend on: missing names remembered as missing
// (Finder probes the same names over and over), CORS for browser clients, X-OC-Mtime,
// X-Expected-Entity-Length on chunked uploads, refusing AppleDouble files, and NFC paths.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcryptjs';
import { startGateway, type TestGateway } from '../helpers/inproc.js';
import { sleep } from '../helpers/gateway-process.js';
import { propfindBody, raw, type RawResponse } from '../helpers/http.js';

// ---------------------------------------------------------------- fixtures

interface FileSpec { text?: string; base64?: string }
interface Capture { header: string; regex?: string }
interface Expect {
  status: number | number[];
  headers?: Record<string, string>;
  headersAbsent?: string[];
  bodyMatches?: string[];
  bodyNotMatches?: string[];
}
interface Step {
  name: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  bodyBase64?: string;
  chunks?: string[];
  credentials?: boolean;
  expect: Expect;
  capture?: Record<string, Capture>;
}
interface Sequence { name: string; source: string; steps: Step[] }
interface Fixture {
  client: string;
  source: string;
  defaultHeaders?: Record<string, string>;
  setup: { dirs?: string[]; files?: Record<string, FileSpec> };
  sequences: Sequence[];
  final: { files?: Record<string, FileSpec>; dirs?: string[]; absent?: string[]; mtimes?: Record<string, string> };
}

// dist/test/e2e/ → the sources' test/fixtures/ (JSON is not copied by tsc).
const FIXTURE_DIR = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
const FIXTURES = ['windows-explorer.json', 'macos-finder.json'];

/** Read synchronously: the sequences become tests when the file is loaded. */
function loadFixture(name: string): Fixture {
  return JSON.parse(readFileSync(join(FIXTURE_DIR, name), 'utf8')) as Fixture;
}

function bytesOf(spec: FileSpec): Buffer {
  if (spec.base64 !== undefined) return Buffer.from(spec.base64, 'base64');
  return Buffer.from(spec.text ?? '', 'utf8');
}

// ---------------------------------------------------------------- HTTP

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const headerValue = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
};

const STAT_BODY = propfindBody('<D:getlastmodified/><D:getcontentlength/><D:creationdate/><D:resourcetype/>');
const propfind0 = (base: string, path: string) => raw(base, 'PROPFIND', path, { depth: '0', 'content-type': 'text/xml' }, STAT_BODY);

const USER = 'alice';
const PASSWORD = 'correct horse battery staple';
const BASIC = 'Basic ' + Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

async function htpasswdFile(dir: string): Promise<string> {
  const file = join(dir, 'htpasswd');
  await writeFile(file, `${USER}:${bcrypt.hashSync(PASSWORD, 8)}\n`);
  return file;
}

// ---------------------------------------------------------------- replay

function substitute(s: string, vars: ReadonlyMap<string, string>, forRegex = false): string {
  return s.replace(/\{\{(\w+)\}\}/g, (_m, name: string) => {
    const v = vars.get(name);
    if (v === undefined) throw new Error(`placeholder {{${name}}} has no value (not captured by an earlier step)`);
    return forRegex ? escapeRe(v) : v;
  });
}

async function runStep(base: string, fx: Fixture, seq: Sequence, step: Step, vars: Map<string, string>): Promise<void> {
  const where = `${fx.client} / ${seq.name} / ${step.name}: ${step.method} ${step.path}`;
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...fx.defaultHeaders, ...step.headers })) headers[k.toLowerCase()] = substitute(v, vars);
  if (step.credentials !== false) headers.authorization = BASIC;
  let body: string | Buffer | string[] | undefined;
  if (step.chunks) body = step.chunks.map((c) => substitute(c, vars));
  else if (step.bodyBase64 !== undefined) body = Buffer.from(step.bodyBase64, 'base64');
  else if (step.body !== undefined) body = substitute(step.body, vars);
  const path = substitute(step.path, vars);
  const res = await raw(base, step.method, path, headers, body);
  const context = `${where}\n→ ${res.status} ${JSON.stringify(res.headers)}\n${res.text.slice(0, 1500)}`;

  const statuses = Array.isArray(step.expect.status) ? step.expect.status : [step.expect.status];
  assert.ok(statuses.includes(res.status), `status ${res.status}, expected ${statuses.join(' or ')}\n${context}`);
  for (const [name, re] of Object.entries(step.expect.headers ?? {})) {
    const v = headerValue(res.headers, name);
    assert.ok(v !== undefined, `header ${name} missing\n${context}`);
    assert.match(v, new RegExp(substitute(re, vars, true), 'i'), `header ${name}\n${context}`);
  }
  for (const name of step.expect.headersAbsent ?? []) assert.equal(headerValue(res.headers, name), undefined, `header ${name} present\n${context}`);
  for (const re of step.expect.bodyMatches ?? []) assert.match(res.text, new RegExp(substitute(re, vars, true), 's'), `body\n${context}`);
  for (const re of step.expect.bodyNotMatches ?? []) assert.doesNotMatch(res.text, new RegExp(substitute(re, vars, true), 's'), `body\n${context}`);

  for (const [name, cap] of Object.entries(step.capture ?? {})) {
    const v = headerValue(res.headers, cap.header);
    assert.ok(v !== undefined, `capture ${name}: header ${cap.header} missing\n${context}`);
    const value = cap.regex ? new RegExp(cap.regex).exec(v)?.[1] : v;
    assert.ok(value, `capture ${name}: ${cap.header} "${v}" does not match ${cap.regex}\n${context}`);
    vars.set(name, value);
  }
}

/** True when `rel` (relative to `root`) names an entry, compared byte for byte (no normalisation). */
async function entryExists(root: string, rel: string): Promise<boolean> {
  try {
    return (await readdir(join(root, dirname(rel)))).includes(basename(rel));
  } catch {
    return false;
  }
}

/**
 * The entries of `rel`'s directory that are `rel`'s name in any Unicode normal form (the
 * gateway may keep a name in the form the client sent). The directory part is matched the same way.
 */
async function equivalentEntries(root: string, rel: string): Promise<string[]> {
  let dirs = [''];
  const parts = rel.split('/');
  for (const [i, part] of parts.entries()) {
    const next: string[] = [];
    for (const d of dirs) {
      let names: string[];
      try {
        names = await readdir(join(root, d));
      } catch {
        continue;
      }
      for (const n of names) if (n.normalize('NFC') === part.normalize('NFC')) next.push(d ? `${d}/${n}` : n);
    }
    dirs = next;
    if (i < parts.length - 1 && dirs.length === 0) break;
  }
  return dirs;
}

describe('client fixtures are well-formed', () => {
  for (const name of FIXTURES) {
    test(name, async () => {
      const fx = loadFixture(name);
      assert.ok(fx.client && fx.source, 'client and source');
      assert.ok(fx.sequences.length > 0);
      const defined = new Set(['origin']);
      for (const seq of fx.sequences) {
        assert.ok(seq.name && seq.source && seq.source.length > 10, `sequence "${seq.name}" cites no source`);
        assert.ok(seq.steps.length > 0, `sequence "${seq.name}" has no step`);
        for (const step of seq.steps) {
          const where = `${seq.name} / ${step.name}`;
          assert.match(step.method, /^[A-Z]+$/, where);
          assert.ok(step.path.startsWith('/'), where);
          const statuses = Array.isArray(step.expect.status) ? step.expect.status : [step.expect.status];
          assert.ok(statuses.length > 0 && statuses.every((s) => Number.isInteger(s) && s >= 100 && s < 600), `${where}: status`);
          const texts = [step.path, ...Object.values(step.headers ?? {}), step.body ?? '', ...(step.chunks ?? []),
            ...Object.values(step.expect.headers ?? {}), ...(step.expect.bodyMatches ?? []), ...(step.expect.bodyNotMatches ?? [])];
          for (const t of texts) for (const m of t.matchAll(/\{\{(\w+)\}\}/g)) assert.ok(defined.has(m[1]!), `${where}: {{${m[1]}}} used before it is captured`);
          for (const re of [...Object.values(step.expect.headers ?? {}), ...(step.expect.bodyMatches ?? []), ...(step.expect.bodyNotMatches ?? [])]) {
            assert.doesNotThrow(() => new RegExp(re.replace(/\{\{\w+\}\}/g, 'x')), `${where}: bad regex ${re}`);
          }
          if (step.chunks) assert.equal(step.headers?.['transfer-encoding'], 'chunked', `${where}: chunks without Transfer-Encoding: chunked`);
          for (const [k, c] of Object.entries(step.capture ?? {})) {
            assert.ok(c.header, `${where}: capture ${k}`);
            if (c.regex) assert.doesNotThrow(() => new RegExp(c.regex!));
            defined.add(k);
          }
        }
      }
    });
  }
});

for (const name of FIXTURES) {
  describe(`replay ${name}`, () => {
    const fx = loadFixture(name);
    let gw: TestGateway;
    let authDir: string;
    const vars = new Map<string, string>();

    before(async () => {
      authDir = await mkdtemp(join(tmpdir(), 'davgate-auth-'));
      const upstreamDir = await mkdtemp(join(tmpdir(), 'davgate-up-'));
      for (const d of fx.setup.dirs ?? []) await mkdir(join(upstreamDir, d), { recursive: true });
      for (const [rel, spec] of Object.entries(fx.setup.files ?? {})) {
        await mkdir(dirname(join(upstreamDir, rel)), { recursive: true });
        await writeFile(join(upstreamDir, rel), bytesOf(spec));
      }
      gw = await startGateway({ auth: { htpasswd: await htpasswdFile(authDir) }, cache: { ttl: 60_000 } }, { upstreamDir });
      vars.set('origin', new URL(gw.url).origin);
    });
    after(async () => {
      if (gw) {
        await gw.close();
        await rm(gw.upstreamDir, { recursive: true, force: true });
      }
      if (authDir) await rm(authDir, { recursive: true, force: true });
    });

    // The sequences share the gateway and run in order, as the client would send them.
    for (const seq of fx.sequences) {
      test(seq.name, async () => {
        for (const step of seq.steps) await runStep(gw.url, fx, seq, step, vars);
      });
    }

    test('the upstream directory holds what the client did', async () => {
      const root = gw.upstreamDir;
      const one = async (rel: string): Promise<string> => {
        const found = await equivalentEntries(root, rel);
        assert.equal(found.length, 1, `${rel}: expected exactly one upstream entry of that name in any normal form, found ${JSON.stringify(found)}`);
        return found[0]!;
      };
      for (const [rel, spec] of Object.entries(fx.final.files ?? {})) {
        assert.deepEqual(await readFile(join(root, await one(rel))), bytesOf(spec), `${rel}: wrong bytes`);
      }
      for (const rel of fx.final.dirs ?? []) assert.ok((await stat(join(root, await one(rel)))).isDirectory(), `${rel} is not a directory`);
      for (const rel of fx.final.absent ?? []) assert.deepEqual(await equivalentEntries(root, rel), [], `${rel} should not exist upstream`);
      for (const [rel, when] of Object.entries(fx.final.mtimes ?? {})) {
        const st = await stat(join(root, await one(rel)));
        assert.equal(Math.round(st.mtimeMs / 1000), Date.parse(when) / 1000, `${rel}: mtime ${new Date(st.mtimeMs).toUTCString()}, expected ${when}`);
      }
      // The upload directory itself stays; any file in it, or beside a target, is a leftover.
      const leftovers = (await readdir(root, { recursive: true })).filter((p) => String(p) !== '.davgate-tmp-uploads' && String(p).split('/').some((s) => s.startsWith('.davgate-tmp-')));
      assert.deepEqual(leftovers, [], 'temporary upload files left behind');
    });
  });
}

// ---------------------------------------------------------------- negative cache

describe('missing names are remembered as missing for the TTL', () => {
  let gw: TestGateway;
  let url: string;
  const PROBES = ['/._foo', '/.DS_Store', '/.Spotlight-V100', '/.metadata_never_index', '/Backups.backupdb', '/mach_kernel', '/._.', '/sub/.DS_Store', '/sub/._photo.jpg'];

  before(async () => {
    gw = await startGateway({ cache: { ttl: 60_000 } });
    url = gw.url;
    assert.equal((await raw(url, 'MKCOL', '/sub')).status, 201);
  });
  after(async () => { await gw?.close(); });

  test('each probed name costs at most one upstream stat when probed again within the TTL', async () => {
    for (const path of PROBES) {
      const before = gw.upstream.count('stat');
      assert.equal((await propfind0(url, path)).status, 404, `first PROPFIND ${path}`);
      assert.equal((await propfind0(url, path)).status, 404, `second PROPFIND ${path}`);
      assert.equal((await raw(url, 'HEAD', path)).status, 404, `HEAD ${path}`);
      assert.equal((await raw(url, 'GET', path)).status, 404, `GET ${path}`);
      const stats = gw.upstream.count('stat') - before;
      assert.ok(stats <= 1, `${path}: ${stats} upstream stats for 4 probes within the TTL`);
    }
    // All of them again: nothing reaches the upstream.
    const before = gw.upstream.count('stat');
    for (const path of PROBES) assert.equal((await propfind0(url, path)).status, 404);
    assert.equal(gw.upstream.count('stat') - before, 0, 'probes repeated within the TTL reached the upstream');
  });

  test('PUT and MKCOL through the gateway make a remembered-missing name visible at once', async () => {
    for (const path of ['/._foo', '/.DS_Store', '/sub/._photo.jpg']) {
      assert.equal((await propfind0(url, path)).status, 404);
      assert.equal((await raw(url, 'PUT', path, {}, `content of ${path}`)).status, 201, `PUT ${path}`);
      assert.equal((await propfind0(url, path)).status, 207, `PROPFIND ${path} right after PUT`);
      const get = await raw(url, 'GET', path);
      assert.equal(get.status, 200, `GET ${path} right after PUT`);
      assert.equal(get.text, `content of ${path}`);
    }
    for (const path of ['/.Spotlight-V100', '/Backups.backupdb']) {
      assert.equal((await propfind0(url, path)).status, 404);
      assert.equal((await raw(url, 'MKCOL', path)).status, 201, `MKCOL ${path}`);
      assert.equal((await propfind0(url, path)).status, 207, `PROPFIND ${path} right after MKCOL`);
      assert.equal((await raw(url, 'PUT', `${path}/inside.bin`, {}, 'x')).status, 201, `PUT inside ${path}`);
      assert.equal((await propfind0(url, `${path}/inside.bin`)).status, 207);
    }
    // And DELETE makes it missing again.
    assert.equal((await raw(url, 'DELETE', '/._foo')).status, 204);
    assert.equal((await propfind0(url, '/._foo')).status, 404);
    assert.equal((await raw(url, 'PUT', '/._foo', {}, 'again')).status, 201);
    assert.equal((await raw(url, 'GET', '/._foo')).text, 'again');
  });

  test('MOVE, COPY and LOCK onto a remembered-missing name make it visible at once', async () => {
    assert.equal((await raw(url, 'PUT', '/src.txt', {}, 'source')).status, 201);
    assert.equal((await raw(url, 'PUT', '/src2.txt', {}, 'source2')).status, 201);

    assert.equal((await propfind0(url, '/copied-here.txt')).status, 404);
    assert.equal((await raw(url, 'COPY', '/src.txt', { destination: '/copied-here.txt' })).status, 201);
    assert.equal((await propfind0(url, '/copied-here.txt')).status, 207, 'COPY destination still remembered as missing');
    assert.equal((await raw(url, 'GET', '/copied-here.txt')).text, 'source');

    assert.equal((await propfind0(url, '/moved-here.txt')).status, 404);
    assert.equal((await raw(url, 'MOVE', '/src2.txt', { destination: '/moved-here.txt' })).status, 201);
    assert.equal((await propfind0(url, '/moved-here.txt')).status, 207, 'MOVE destination still remembered as missing');
    assert.equal((await raw(url, 'GET', '/moved-here.txt')).text, 'source2');
    assert.equal((await propfind0(url, '/src2.txt')).status, 404);

    // A whole tree moved onto names that were probed, the member's name included.
    assert.equal((await raw(url, 'MKCOL', '/tree')).status, 201);
    assert.equal((await raw(url, 'PUT', '/tree/leaf.txt', {}, 'leaf')).status, 201);
    assert.equal((await propfind0(url, '/tree-moved')).status, 404);
    assert.equal((await propfind0(url, '/tree-moved/leaf.txt')).status, 404);
    assert.equal((await raw(url, 'MOVE', '/tree', { destination: '/tree-moved' })).status, 201);
    assert.equal((await propfind0(url, '/tree-moved')).status, 207);
    assert.equal((await propfind0(url, '/tree-moved/leaf.txt')).status, 207, 'member of a moved tree still remembered as missing');
    assert.equal((await raw(url, 'GET', '/tree-moved/leaf.txt')).text, 'leaf');

    assert.equal((await propfind0(url, '/tree-copy/leaf.txt')).status, 404);
    assert.equal((await raw(url, 'COPY', '/tree-moved', { destination: '/tree-copy' })).status, 201);
    assert.equal((await propfind0(url, '/tree-copy/leaf.txt')).status, 207, 'member of a copied tree still remembered as missing');

    assert.equal((await propfind0(url, '/locked-here.txt')).status, 404);
    const lock = await raw(url, 'LOCK', '/locked-here.txt', { 'content-type': 'text/xml' },
      '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>');
    assert.equal(lock.status, 201);
    assert.equal((await propfind0(url, '/locked-here.txt')).status, 207, 'LOCK-created resource still remembered as missing');
  });

  test('POST /invalidate on the admin listener forgets that a name was missing', async () => {
    assert.equal((await propfind0(url, '/admin-made.txt')).status, 404);
    assert.equal((await propfind0(url, '/admin-dir/inner.txt')).status, 404);
    await writeFile(join(gw.upstreamDir, 'admin-made.txt'), 'made behind the gateway\'s back');
    await mkdir(join(gw.upstreamDir, 'admin-dir'));
    await writeFile(join(gw.upstreamDir, 'admin-dir/inner.txt'), 'inner');
    assert.equal((await propfind0(url, '/admin-made.txt')).status, 404, 'still remembered as missing within the TTL');
    const inv = await raw(gw.adminUrl, 'POST', '/invalidate?path=/admin-made.txt');
    assert.equal(inv.status, 200, inv.text);
    assert.equal((await propfind0(url, '/admin-made.txt')).status, 207, 'invalidation did not forget the missing name');
    assert.equal((await raw(gw.adminUrl, 'POST', '/invalidate?path=/admin-dir')).status, 200);
    assert.equal((await propfind0(url, '/admin-dir/inner.txt')).status, 207, 'invalidating a directory did not forget missing names below it');
  });

  test('a name created directly upstream is seen once the TTL has passed', async () => {
    const short = await startGateway({ cache: { ttl: 300 } });
    try {
      assert.equal((await propfind0(short.url, '/late.txt')).status, 404);
      await writeFile(join(short.upstreamDir, 'late.txt'), 'late');
      await sleep(450);
      assert.equal((await propfind0(short.url, '/late.txt')).status, 207, 'a missing name was remembered beyond the TTL');
      assert.equal((await raw(short.url, 'GET', '/late.txt')).text, 'late');
    } finally {
      await short.close();
    }
  });
});

// ---------------------------------------------------------------- CORS

describe('CORS', () => {
  const preflight = (base: string, origin: string, extra: Record<string, string> = {}) => raw(base, 'OPTIONS', '/', {
    origin, 'access-control-request-method': 'PROPFIND', 'access-control-request-headers': 'authorization, depth, content-type', ...extra,
  });
  const CORS_HEADERS = ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-allow-credentials', 'access-control-expose-headers'];

  test('by default no CORS header is sent, whatever the Origin', async () => {
    const gw = await startGateway();
    try {
      for (const origin of ['https://app.example', 'null', 'http://127.0.0.1']) {
        const res = await preflight(gw.url, origin);
        assert.equal(res.status, 200);
        for (const h of CORS_HEADERS) assert.equal(res.headers[h], undefined, `${origin}: ${h} sent by default`);
        const get = await raw(gw.url, 'PROPFIND', '/', { origin, depth: '0' });
        assert.equal(get.status, 207);
        for (const h of CORS_HEADERS) assert.equal(get.headers[h], undefined, `${origin}: ${h} on PROPFIND`);
      }
    } finally {
      await gw.close();
    }
  });

  test('with corsOrigins, a preflight from an allowed origin is answered without credentials even when auth is on', async () => {
    const authDir = await mkdtemp(join(tmpdir(), 'davgate-auth-'));
    const gw = await startGateway({ auth: { htpasswd: await htpasswdFile(authDir) }, webdav: { corsOrigins: ['https://app.example'] } });
    try {
      const ok = await preflight(gw.url, 'https://app.example');
      assert.ok(ok.status === 200 || ok.status === 204, `preflight → ${ok.status}`);
      assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
      const methods = String(ok.headers['access-control-allow-methods']).toUpperCase();
      for (const m of ['PROPFIND', 'PUT', 'LOCK', 'MOVE']) assert.match(methods, new RegExp(`\\b${m}\\b`), `Allow-Methods ${methods}`);
      const allowHeaders = String(ok.headers['access-control-allow-headers']).toLowerCase();
      for (const h of ['authorization', 'depth', 'content-type']) assert.ok(allowHeaders.includes(h), `Allow-Headers ${allowHeaders} lacks ${h}`);
      assert.match(String(ok.headers.vary), /origin/i, 'Vary: Origin');
      assert.equal(ok.headers['www-authenticate'], undefined);

      const bad = await preflight(gw.url, 'https://evil.example');
      for (const h of ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-allow-credentials']) {
        assert.equal(bad.headers[h], undefined, `other origin got ${h}: ${String(bad.headers[h])}`);
      }
      const lookalike = await preflight(gw.url, 'https://app.example.evil.example');
      assert.equal(lookalike.headers['access-control-allow-origin'], undefined, 'origin matched by prefix');

      // The actual request (with credentials) from the allowed origin carries the CORS headers too.
      const real = await raw(gw.url, 'PROPFIND', '/', { origin: 'https://app.example', depth: '0', authorization: BASIC });
      assert.equal(real.status, 207);
      assert.equal(real.headers['access-control-allow-origin'], 'https://app.example');
      const expose = String(real.headers['access-control-expose-headers']).toLowerCase();
      for (const h of ['etag', 'lock-token', 'dav']) assert.ok(expose.includes(h), `Expose-Headers ${expose} lacks ${h}`);
      // ... also when it is refused for lack of credentials, so the page can see the 401.
      const denied = await raw(gw.url, 'PROPFIND', '/', { origin: 'https://app.example', depth: '0' });
      assert.equal(denied.status, 401);
      // No Origin, no CORS.
      const plain = await raw(gw.url, 'PROPFIND', '/', { depth: '0', authorization: BASIC });
      assert.equal(plain.headers['access-control-allow-origin'], undefined);
    } finally {
      await gw.close();
      await rm(authDir, { recursive: true, force: true });
    }
  });

  test('corsOrigins ["*"] allows any origin, never with credentials', async () => {
    const gw = await startGateway({ webdav: { corsOrigins: ['*'] } });
    try {
      const res = await preflight(gw.url, 'https://anything.example');
      assert.equal(res.headers['access-control-allow-origin'], '*');
      assert.ok(res.headers['access-control-allow-methods']);
      assert.notEqual(res.headers['access-control-allow-credentials'], 'true', '"*" must not be combined with credentials');
    } finally {
      await gw.close();
    }
  });
});

// ---------------------------------------------------------------- client extensions

describe('client extensions', () => {
  let gw: TestGateway;
  let url: string;

  before(async () => {
    gw = await startGateway({ cache: { ttl: 60_000 } });
    url = gw.url;
  });
  after(async () => { await gw?.close(); });

  // The upload directory itself stays; any file in it, or beside a target, is a leftover.
  const tmpLeftovers = async (root: string) => (await readdir(root, { recursive: true })).map(String).filter((p) => p !== '.davgate-tmp-uploads' && p.split('/').some((s) => s.startsWith('.davgate-tmp-')));

  test('PUT with X-OC-Mtime sets the upstream mtime and answers X-OC-MTime: accepted', async () => {
    const T = 1_500_000_000;
    const res = await raw(url, 'PUT', '/oc.txt', { 'x-oc-mtime': String(T) }, 'owncloud');
    assert.equal(res.status, 201);
    assert.equal(res.headers['x-oc-mtime'], 'accepted');
    assert.equal((await stat(join(gw.upstreamDir, 'oc.txt'))).mtimeMs, T * 1000);
    const pf = await propfind0(url, '/oc.txt');
    assert.match(pf.text, new RegExp(`getlastmodified>${escapeRe(new Date(T * 1000).toUTCString())}<`));
    assert.equal((await raw(url, 'HEAD', '/oc.txt')).headers['last-modified'], new Date(T * 1000).toUTCString());

    // Overwriting with another mtime.
    const again = await raw(url, 'PUT', '/oc.txt', { 'x-oc-mtime': String(T + 3600) }, 'owncloud 2');
    assert.equal(again.status, 204);
    assert.equal(again.headers['x-oc-mtime'], 'accepted');
    assert.equal((await stat(join(gw.upstreamDir, 'oc.txt'))).mtimeMs, (T + 3600) * 1000);

    // Without the header: no answer header, and the mtime is "now".
    const plain = await raw(url, 'PUT', '/plain.txt', {}, 'plain');
    assert.equal(plain.headers['x-oc-mtime'], undefined);
    assert.ok(Math.abs((await stat(join(gw.upstreamDir, 'plain.txt'))).mtimeMs - Date.now()) < 60_000);

    // A value that is not a number of seconds is not "accepted" and does not break the PUT.
    const junk = await raw(url, 'PUT', '/junk.txt', { 'x-oc-mtime': 'yesterday' }, 'junk');
    assert.ok(junk.status < 500, `X-OC-Mtime: yesterday → ${junk.status}`);
    assert.notEqual(junk.headers['x-oc-mtime'], 'accepted');
  });

  test('a chunked PUT is checked against X-Expected-Entity-Length: a mismatch is 400 and commits nothing', async () => {
    const chunked = (path: string, expected: number, pieces: string[], extra: Record<string, string> = {}) =>
      raw(url, 'PUT', path, { 'transfer-encoding': 'chunked', 'x-expected-entity-length': String(expected), ...extra }, pieces);

    const short = await chunked('/xeel-short.txt', 10, ['abc', 'de']);
    assert.equal(short.status, 400, `5 bytes for 10 → ${short.status}`);
    const long = await chunked('/xeel-long.txt', 10, ['0123456789', 'abcde']);
    assert.equal(long.status, 400, `15 bytes for 10 → ${long.status}`);
    assert.ok(!(await entryExists(gw.upstreamDir, 'xeel-short.txt')), 'short upload committed');
    assert.ok(!(await entryExists(gw.upstreamDir, 'xeel-long.txt')), 'long upload committed');
    assert.equal((await propfind0(url, '/xeel-short.txt')).status, 404);

    assert.equal((await raw(url, 'PUT', '/xeel-existing.txt', {}, 'old content')).status, 201);
    assert.equal((await chunked('/xeel-existing.txt', 100, ['new'])).status, 400);
    assert.equal(await readFile(join(gw.upstreamDir, 'xeel-existing.txt'), 'utf8'), 'old content', 'a failed upload replaced the file');
    assert.equal((await raw(url, 'GET', '/xeel-existing.txt')).text, 'old content');

    const ok = await chunked('/xeel-ok.txt', 10, ['01234', '56789']);
    assert.equal(ok.status, 201);
    assert.equal(await readFile(join(gw.upstreamDir, 'xeel-ok.txt'), 'utf8'), '0123456789');
    const empty = await chunked('/xeel-empty.txt', 0, []);
    assert.equal(empty.status, 201);
    assert.equal((await stat(join(gw.upstreamDir, 'xeel-empty.txt'))).size, 0);
    assert.deepEqual(await tmpLeftovers(gw.upstreamDir), []);
  });

  test('._ AppleDouble files and .DS_Store are stored by default', async () => {
    assert.equal((await raw(url, 'PUT', '/._stored.txt', {}, 'AD')).status, 201);
    assert.equal((await raw(url, 'PUT', '/.DS_Store', {}, 'DS')).status, 201);
    assert.equal(await readFile(join(gw.upstreamDir, '._stored.txt'), 'utf8'), 'AD');
    assert.equal(await readFile(join(gw.upstreamDir, '.DS_Store'), 'utf8'), 'DS');
  });

  // Unicode: macOS sends names decomposed (NFD), Windows and Linux clients composed (NFC).
  const enc = (name: string) => '/' + name.split('/').map(encodeURIComponent).join('/');
  /** Entries of `dir` (relative to the upstream root) that are `name` in some normal form. */
  const sameName = async (dir: string, name: string) => (await readdir(join(gw.upstreamDir, dir))).filter((n) => n.normalize('NFC') === name.normalize('NFC'));

  test('a name written in one Unicode normal form is read, overwritten and deleted through the other; one file upstream', async () => {
    const nfc = 'Caf\u00e9.txt';
    const nfd = 'Cafe\u0301.txt';
    assert.notEqual(nfc, nfd);
    assert.equal((await raw(url, 'PUT', enc(nfd), {}, 'coffee')).status, 201);
    const byNfc = await raw(url, 'GET', enc(nfc));
    assert.equal(byNfc.status, 200, 'NFD upload not found by its NFC name');
    assert.equal(byNfc.text, 'coffee');
    assert.equal((await propfind0(url, enc(nfc))).status, 207);
    assert.equal((await raw(url, 'PUT', enc(nfc), {}, 'tea')).status, 204, 'overwrite through the other form is not an overwrite');
    assert.equal((await raw(url, 'GET', enc(nfd))).text, 'tea');
    assert.deepEqual((await sameName('.', nfc)).length, 1, `upstream has ${(await sameName('.', nfc)).map((n) => JSON.stringify(n)).join(', ')}`);

    const nfc2 = 'na\u00efve.txt';
    const nfd2 = 'nai\u0308ve.txt';
    assert.equal((await raw(url, 'PUT', enc(nfc2), {}, 'naive')).status, 201);
    const byNfd = await raw(url, 'GET', enc(nfd2));
    assert.equal(byNfd.status, 200, 'NFC upload not found by its NFD name');
    assert.equal(byNfd.text, 'naive');
    const pp = await raw(url, 'PROPPATCH', enc(nfd2), { 'content-type': 'text/xml' },
      '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>');
    assert.equal(pp.status, 207);
    const pf = await raw(url, 'PROPFIND', enc(nfc2), { depth: '0', 'content-type': 'text/xml' },
      '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><Z:p/></D:prop></D:propfind>');
    assert.match(pf.text, /<(\w+:)?p[^>]*>v</, 'dead property set through one form not found through the other');
    assert.equal((await raw(url, 'DELETE', enc(nfd2))).status, 204);
    assert.deepEqual(await sameName('.', nfc2), []);
    assert.equal((await raw(url, 'GET', enc(nfc2))).status, 404);
  });

  test('new names are stored upstream as the client spelled them, and found in either form', async () => {
    // davfs2 and macOS write decomposed (NFD) names and reopen them by that spelling.
    const nfd = 'Gru\u0308n.txt';
    assert.equal((await raw(url, 'PUT', enc(nfd), {}, 'green')).status, 201);
    assert.deepEqual(await sameName('.', nfd), [nfd], 'upstream name is not the one the client wrote');
    assert.equal((await raw(url, 'GET', enc(nfd))).text, 'green');
    assert.equal((await raw(url, 'GET', enc(nfd.normalize('NFC')))).text, 'green', 'not found by the other form');
    const listing = (await raw(url, 'PROPFIND', '/', { depth: '1' })).text;
    assert.ok(listing.includes(enc(nfd)) || listing.includes(nfd), 'not listed under the spelling written');
    // The other spelling writes the same resource, never a second one.
    assert.equal((await raw(url, 'PUT', enc(nfd.normalize('NFC')), {}, 'greener')).status, 204);
    assert.deepEqual(await sameName('.', nfd), [nfd]);
    assert.equal((await raw(url, 'GET', enc(nfd))).text, 'greener');
    assert.equal((await raw(url, 'MKCOL', enc('Ordner Gro\u0308\u00dfe'))).status, 201);
    assert.deepEqual(await sameName('.', 'Ordner Größe'), ['Ordner Gro\u0308\u00dfe']);
    assert.equal((await raw(url, 'PUT', '/plain-src.txt', {}, 'p')).status, 201);
    assert.equal((await raw(url, 'MOVE', '/plain-src.txt', { destination: enc('U\u0308ber.txt') })).status, 201);
    assert.deepEqual(await sameName('.', 'Über.txt'), ['U\u0308ber.txt'], 'MOVE destination respelled');
  });

  test('a file is created inside a directory whose name was written in the other normal form', async () => {
    const dirNfd = 'Fotos Ma\u0301laga';
    const dirNfc = 'Fotos M\u00e1laga';
    assert.equal((await raw(url, 'MKCOL', enc(dirNfd))).status, 201);
    assert.equal((await raw(url, 'MKCOL', enc(dirNfc))).status, 405, 'MKCOL of the same name in the other form');
    assert.equal((await raw(url, 'PUT', '/fotos-src.txt', {}, 's')).status, 201);
    const wrong: string[] = [];
    const expect = async (what: string, status: number, res: Promise<RawResponse>) => {
      const r = await res;
      if (r.status !== status) wrong.push(`${what} → ${r.status} ${r.text.trim()}`);
    };
    await expect('PUT a.txt', 201, raw(url, 'PUT', enc(`${dirNfc}/a.txt`), {}, 'a'));
    await expect('MKCOL sub', 201, raw(url, 'MKCOL', enc(`${dirNfc}/sub`)));
    await expect('COPY to b.txt', 201, raw(url, 'COPY', '/fotos-src.txt', { destination: enc(`${dirNfc}/b.txt`) }));
    await expect('MOVE to c.txt', 201, raw(url, 'MOVE', '/fotos-src.txt', { destination: enc(`${dirNfc}/c.txt`) }));
    await expect('LOCK d.txt', 201, raw(url, 'LOCK', enc(`${dirNfc}/d.txt`), { 'content-type': 'text/xml' },
      '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>'));
    const dirs = await sameName('.', dirNfc);
    assert.deepEqual(wrong, [], `into "${dirNfd}" (NFD) through its NFC name: ${wrong.join('; ')}`);
    assert.equal(dirs.length, 1, `directories: ${JSON.stringify(dirs)}`);
    assert.deepEqual((await readdir(join(gw.upstreamDir, dirs[0]!))).sort(), ['a.txt', 'b.txt', 'c.txt', 'd.txt', 'sub']);
  });

  test('MOVE and COPY with Overwrite: T onto a name that exists in the other normal form replace it', async () => {
    const wrong: string[] = [];
    assert.equal((await raw(url, 'PUT', enc('Ni\u00f1o.txt'), {}, 'old (NFC)')).status, 201);
    assert.equal((await raw(url, 'PUT', '/new-content.txt', {}, 'new')).status, 201);
    const mv = await raw(url, 'MOVE', '/new-content.txt', { destination: enc('Nin\u0303o.txt'), overwrite: 'T' });
    if (mv.status !== 204) wrong.push(`MOVE → ${mv.status}, expected 204`);
    const names = await sameName('.', 'Niño.txt');
    if (names.length !== 1) wrong.push(`after MOVE upstream has ${names.map((n) => JSON.stringify(n)).join(' and ')}`);
    for (const form of ['NFC', 'NFD'] as const) {
      const text = (await raw(url, 'GET', enc('Niño.txt'.normalize(form)))).text;
      if (text !== 'new') wrong.push(`after MOVE GET (${form}) gives "${text}"`);
    }

    assert.equal((await raw(url, 'PUT', enc('Se\u0301ance.txt'), {}, 'old (NFD)')).status, 201);
    assert.equal((await raw(url, 'PUT', '/copy-src.txt', {}, 'copied')).status, 201);
    const cp = await raw(url, 'COPY', '/copy-src.txt', { destination: enc('S\u00e9ance.txt'), overwrite: 'T' });
    if (cp.status !== 204) wrong.push(`COPY → ${cp.status}, expected 204`);
    const names2 = await sameName('.', 'Séance.txt');
    if (names2.length !== 1) wrong.push(`after COPY upstream has ${names2.map((n) => JSON.stringify(n)).join(' and ')}`);
    for (const form of ['NFC', 'NFD'] as const) {
      const text = (await raw(url, 'GET', enc('Séance.txt'.normalize(form)))).text;
      if (text !== 'copied') wrong.push(`after COPY GET (${form}) gives "${text}"`);
    }
    assert.deepEqual(wrong, []);
  });

  test('a lock taken through one normal form protects the file through the other', async () => {
    assert.equal((await raw(url, 'PUT', enc('Ma\u0308rz.txt'), {}, 'locked by a Mac')).status, 201);
    const lock = await raw(url, 'LOCK', enc('Ma\u0308rz.txt'), { 'content-type': 'text/xml', depth: '0' },
      '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>');
    assert.equal(lock.status, 200);
    const token = /^<(.+)>$/.exec(String(lock.headers['lock-token']))?.[1];
    assert.ok(token);
    const nfc = enc('M\u00e4rz.txt');
    const attempts: Array<[string, Record<string, string>, string?]> = [
      ['PUT', {}, 'overwritten by Windows'],
      ['DELETE', {}],
      ['MOVE', { destination: '/maerz-moved.txt' }],
      ['PROPPATCH', { 'content-type': 'text/xml' }, '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>'],
      ['LOCK', { 'content-type': 'text/xml', depth: '0' }, '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>'],
    ];
    const wrong: string[] = [];
    for (const [method, headers, body] of attempts) {
      const res = await raw(url, method, nfc, headers, body);
      if (res.status !== 423) wrong.push(`${method} (NFC name) → ${res.status}`);
    }
    const pf = await raw(url, 'PROPFIND', nfc, { depth: '0', 'content-type': 'text/xml' },
      '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>');
    if (!pf.text.includes(token)) wrong.push('lockdiscovery through the NFC name does not show the lock');
    assert.deepEqual(wrong, [], `a file locked through its NFD name: ${wrong.join('; ')}`);
    assert.equal((await raw(url, 'UNLOCK', nfc, { 'lock-token': `<${token}>` })).status, 204, 'UNLOCK through the other form');
  });

  test('a file stored upstream under an NFD name (not through the gateway) can be read through its listed href', async () => {
    const nfd = 'Zu\u0308rich.txt';
    await writeFile(join(gw.upstreamDir, nfd), 'written by a Mac directly');
    const list = await raw(url, 'PROPFIND', '/', { depth: '1' });
    assert.equal(list.status, 207);
    const hrefs = [...list.text.matchAll(/<(?:\w+:)?href>([^<]*)<\//g)].map((m) => m[1]!);
    const href = hrefs.find((h) => decodeURIComponent(h).normalize('NFC') === '/Z\u00fcrich.txt');
    assert.ok(href, `not listed: ${hrefs.join(' ')}`);
    const get = await raw(url, 'GET', href);
    assert.equal(get.status, 200, `GET ${href} (the listed href) → ${get.status}`);
    assert.equal(get.text, 'written by a Mac directly');
    for (const form of ['NFC', 'NFD'] as const) {
      const res = await raw(url, 'GET', '/' + encodeURIComponent('Zürich.txt'.normalize(form)));
      assert.equal(res.status, 200, `GET by its ${form} name → ${res.status}`);
    }
  });
});

describe('client extensions: webdav.appleDouble refuse', () => {
  let gw: TestGateway;
  let url: string;

  before(async () => {
    gw = await startGateway({ cache: { ttl: 60_000 }, webdav: { appleDouble: 'refuse' } });
    url = gw.url;
    assert.equal((await raw(url, 'MKCOL', '/sub')).status, 201);
  });
  after(async () => { await gw?.close(); });

  test('PUT and MKCOL of ._name and .DS_Store answer 403 and create nothing', async () => {
    for (const path of ['/._file.txt', '/sub/._file.txt', '/._.', '/.DS_Store', '/sub/.DS_Store']) {
      const res = await raw(url, 'PUT', path, {}, 'mac metadata');
      assert.equal(res.status, 403, `PUT ${path} → ${res.status}`);
      // As Finder sends it: chunked, with X-Expected-Entity-Length.
      const chunked = await raw(url, 'PUT', path, { 'transfer-encoding': 'chunked', 'x-expected-entity-length': '12' }, ['mac ', 'metadata']);
      assert.equal(chunked.status, 403, `chunked PUT ${path} → ${chunked.status}`);
    }
    for (const path of ['/._dir', '/sub/._dir', '/.DS_Store']) {
      assert.equal((await raw(url, 'MKCOL', path)).status, 403, `MKCOL ${path}`);
    }
    const all = (await readdir(gw.upstreamDir, { recursive: true })).map(String);
    assert.deepEqual(all.filter((p) => /(^|\/)(\._|\.DS_Store)/.test(p)), [], `created upstream: ${all.join(', ')}`);
    // The gateway still answers, and names that only look similar are ordinary files.
    for (const path of ['/x._file.txt', '/_.file', '/.DS_Store.txt', '/sub/DS_Store']) {
      assert.equal((await raw(url, 'PUT', path, {}, 'fine')).status, 201, `PUT ${path}`);
    }
    assert.equal((await raw(url, 'MKCOL', '/normal-dir')).status, 201);
  });

  test('MOVE, COPY and LOCK cannot create a refused name either', async () => {
    assert.equal((await raw(url, 'PUT', '/plain.txt', {}, 'p')).status, 201);
    const attempts: Array<[string, string, Record<string, string>, string?]> = [
      ['MOVE', '/plain.txt', { destination: '/._plain.txt' }],
      ['COPY', '/plain.txt', { destination: '/sub/.DS_Store' }],
      ['LOCK', '/._locked.txt', { 'content-type': 'text/xml' }, '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>'],
    ];
    for (const [method, path, headers, body] of attempts) {
      const res = await raw(url, method, path, headers, body);
      assert.equal(res.status, 403, `${method} ${path} ${JSON.stringify(headers)} → ${res.status}`);
    }
    const all = (await readdir(gw.upstreamDir, { recursive: true })).map(String);
    assert.deepEqual(all.filter((p) => /(^|\/)(\._|\.DS_Store$)/.test(p)), [], `created upstream: ${all.join(', ')}`);
    assert.ok(all.includes('plain.txt'), 'the source of the refused MOVE is gone');
  });
});
