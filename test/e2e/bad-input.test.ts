// Hostile and malformed requests against a real in-process gateway over a real directory:
// traversal in every spelling, symlinks leaving the root, broken XML, bad headers, ranges,
// conditionals and uploads that never finish. Nothing may leak, nothing may be written
// outside the root, and the gateway must keep answering.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { lstat, mkdir, mkdtemp, readFile, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/inproc.js';
import { sleep, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { raw } from '../helpers/http.js';

const SECRET = 'SENTINEL-7f3a-TOP-SECRET-CONTENT';
const PASSWD_MARK = 'root:'; // first line of any /etc/passwd
const XML_LIMIT = 1024;

/** Every path below `dir` (relative), without following symbolic links. */
async function walk(dir: string, skip?: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (d: string): Promise<void> => {
    for (const name of await readdir(d)) {
      const full = join(d, name);
      if (skip !== undefined && full === skip) continue;
      out.push(relative(dir, full));
      // A temporary file may vanish between readdir and lstat: that is the cleanup being waited for.
      const st = await lstat(full).catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT') return undefined; throw e; });
      if (st?.isDirectory()) await visit(full);
    }
  };
  await visit(dir);
  return out.sort();
}

// The upload directory itself stays; any file in it, or beside a target, is a leftover.
const tmpLeftovers = async (root: string) => (await walk(root)).filter((p) => p !== '.davgate-tmp-uploads' && p.split('/').some((s) => s.startsWith('.davgate-tmp-')));

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > end) return false;
    await sleep(25);
  }
}

describe('bad input', () => {
  let parent: string;
  let root: string;
  let gw: TestGateway;
  let outsideBefore: string[];
  let passwdBefore: string;
  let port: number;

  before(async () => {
    parent = await realpath(await mkdtemp(join(tmpdir(), 'davgate-bad-')));
    root = join(parent, 'root');
    await mkdir(root);
    await writeFile(join(parent, 'secret.txt'), SECRET);
    await symlink(parent, join(root, 'link-to-parent'));
    await symlink('/etc/passwd', join(root, 'passwd-link'));
    // Dangling links whose targets lie outside: writing through them must not create the target.
    await symlink(join(parent, 'made-through-link.txt'), join(root, 'dangling-out'));
    await symlink(join(parent, 'no-such-dir'), join(root, 'dangling-dir'));
    await mkdir(join(root, 'a'));
    await writeFile(join(root, 'hundred.bin'), Buffer.from(Array.from({ length: 100 }, (_, i) => i)));
    await writeFile(join(root, 'file.txt'), 'inside\n');
    await writeFile(join(root, 'keep.txt'), 'keep me\n');
    outsideBefore = await walk(parent, root);
    passwdBefore = await readFile('/etc/passwd', 'utf8');
    gw = await startGateway({ webdav: { maxXmlBodyBytes: XML_LIMIT }, cache: { ttl: 0 } }, { upstreamDir: root });
    port = Number(new URL(gw.url).port);
  });

  after(async () => {
    await gw?.close();
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  const TRAVERSAL = [
    '/../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E%2Fsecret.txt',
    '/a/..%2f..%2fsecret.txt',
    '/..%5csecret.txt',
    '/%252e%252e/secret.txt',
    '/%00x',
    '/link-to-parent/secret.txt',
    '/passwd-link',
  ];
  // Only the double-encoded path names something legitimately inside the root ("%2e%2e"), whose
  // parent is missing: 409 is the honest answer to writes there.
  const allowed = (path: string, method: string) => (path.includes('%25') && ['PUT', 'MKCOL', 'LOCK'].includes(method) ? [400, 403, 404, 409] : [400, 403, 404]);

  for (const method of ['GET', 'HEAD', 'PROPFIND', 'PUT', 'DELETE', 'MKCOL', 'MOVE', 'COPY', 'PROPPATCH', 'LOCK']) {
    test(`${method} with traversal paths is refused and leaks nothing`, async () => {
      for (const [i, path] of TRAVERSAL.entries()) {
        const headers: Record<string, string> = {};
        let body: string | undefined;
        if (method === 'PROPFIND') headers.depth = '0';
        if (method === 'PUT') body = 'PWNED';
        if (method === 'MOVE' || method === 'COPY') headers.destination = `/stolen-${method}-${i}.txt`;
        if (method === 'PROPPATCH') {
          body = '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:x>1</Z:x></D:prop></D:set></D:propertyupdate>';
          headers['content-type'] = 'application/xml';
        }
        if (method === 'LOCK') {
          body = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
          headers['content-type'] = 'application/xml';
        }
        const res = await raw(gw.url, method, path, headers, body);
        assert.ok(allowed(path, method).includes(res.status), `${method} ${path} → ${res.status} ${res.body.toString().slice(0, 200)}`);
        const text = res.body.toString('latin1');
        assert.ok(!text.includes(SECRET), `${method} ${path} leaked the secret`);
        assert.ok(!text.includes(PASSWD_MARK), `${method} ${path} leaked /etc/passwd`);
        if (method === 'MOVE' || method === 'COPY') assert.equal(existsSync(join(root, `stolen-${method}-${i}.txt`)), false, `${method} ${path} copied something in`);
      }
      assert.equal(await readFile(join(parent, 'secret.txt'), 'utf8'), SECRET);
      assert.deepEqual(await walk(parent, root), outsideBefore);
      assert.equal(await readFile('/etc/passwd', 'utf8'), passwdBefore);
    });
  }

  test('LOCK and PROPPATCH refuse ".." like every other method instead of resolving it', async () => {
    // Traversal is refused, not resolved (davpath.ts): "/a/../x" must not quietly become "/x".
    const lockBody = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
    const res = await raw(gw.url, 'LOCK', '/a/../lock-resolved.txt', { 'content-type': 'application/xml' }, lockBody);
    assert.ok(res.status >= 400 && res.status < 500, `LOCK /a/../lock-resolved.txt → ${res.status}`);
    assert.equal(existsSync(join(root, 'lock-resolved.txt')), false, 'LOCK resolved ".." and created /lock-resolved.txt');
    const pp = await raw(gw.url, 'PROPPATCH', '/a/../file.txt', { 'content-type': 'application/xml' },
      '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:x>1</Z:x></D:prop></D:set></D:propertyupdate>');
    assert.ok(pp.status >= 400 && pp.status < 500, `PROPPATCH /a/../file.txt → ${pp.status}`);
  });

  test('links leaving the root are not listed', async () => {
    const res = await raw(gw.url, 'PROPFIND', '/', { depth: '1' });
    assert.equal(res.status, 207);
    const xml = res.body.toString();
    assert.match(xml, /hundred\.bin/, 'positive control: a real file is listed');
    for (const name of ['link-to-parent', 'passwd-link', 'dangling-out', 'dangling-dir']) assert.ok(!xml.includes(name), `${name} listed in PROPFIND`);
    const html = (await raw(gw.url, 'GET', '/')).body.toString();
    assert.match(html, /hundred\.bin/);
    for (const name of ['link-to-parent', 'passwd-link']) assert.ok(!html.includes(name), `${name} listed in GET /`);
  });

  test('writes through dangling links never create their outside targets', async () => {
    for (const [method, path, body] of [
      ['PUT', '/dangling-out', 'PWNED'],
      ['PUT', '/dangling-dir/x.txt', 'PWNED'],
      ['MKCOL', '/dangling-dir/sub', undefined],
      ['MKCOL', '/dangling-dir', undefined],
    ] as const) {
      const res = await raw(gw.url, method, path, {}, body);
      assert.ok(res.status < 500, `${method} ${path} → ${res.status}`);
    }
    const cp = await raw(gw.url, 'COPY', '/file.txt', { destination: '/dangling-out' });
    assert.ok(cp.status < 500, `COPY → /dangling-out: ${cp.status}`);
    assert.equal(existsSync(join(parent, 'made-through-link.txt')), false, 'a file was created outside the root through a dangling link');
    assert.equal(existsSync(join(parent, 'no-such-dir')), false, 'a directory was created outside the root through a dangling link');
    assert.deepEqual(await walk(parent, root), outsideBefore);
  });

  test('Destination traversal on COPY and MOVE is refused', async () => {
    const host = `http://127.0.0.1:${port}`;
    const dests = [
      `${host}/../secret2.txt`,
      'http://elsewhere.example/../secret2.txt',
      `${host}/%2e%2e/x`,
      '/%2e%2e/x',
      '/..%2fsecret2.txt',
      `${host}/a/..%2F..%2Fsecret2.txt`,
      '/link-to-parent/secret2.txt',
      '/link-to-parent/secret.txt',
      '/passwd-link',
      '/%00x',
    ];
    for (const method of ['COPY', 'MOVE']) {
      for (const destination of dests) {
        const res = await raw(gw.url, method, '/keep.txt', { destination, overwrite: 'T' });
        assert.ok(res.status >= 400 && res.status < 500, `${method} Destination: ${destination} → ${res.status}`);
        assert.equal(await readFile(join(root, 'keep.txt'), 'utf8'), 'keep me\n', `${method} to ${destination} moved the source`);
      }
    }
    assert.equal(existsSync(join(parent, 'secret2.txt')), false);
    assert.equal(existsSync(join(parent, 'x')), false);
    assert.equal(await readFile(join(parent, 'secret.txt'), 'utf8'), SECRET);
    assert.deepEqual(await walk(parent, root), outsideBefore);
    assert.equal(await readFile('/etc/passwd', 'utf8'), passwdBefore);
  });

  test('malformed XML: PROPFIND 400, LOCK 4xx, and the gateway keeps answering', async () => {
    const bad = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:propfind';
    const pf = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0', 'content-type': 'application/xml' }, bad);
    assert.equal(pf.status, 400, pf.body.toString());
    const notDav = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0', 'content-type': 'application/xml' }, '<?xml version="1.0"?><foo/>');
    assert.equal(notDav.status, 400, 'a well-formed body that is not DAV:propfind');
    const twoRoots = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0' }, '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind><x/>');
    assert.equal(twoRoots.status, 400);
    for (const body of [bad, '<<<not xml at all', '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope>', '<D:propertyupdate xmlns:D="DAV:"/>']) {
      const res = await raw(gw.url, 'LOCK', '/file.txt', { 'content-type': 'application/xml' }, body, 5000);
      assert.ok(res.status >= 400 && res.status < 500, `LOCK ${body} → ${res.status} ${res.body.toString().slice(0, 200)}`);
      assert.equal((await raw(gw.url, 'OPTIONS', '/')).status, 200);
    }
    assert.equal(await readFile(join(root, 'file.txt'), 'utf8'), 'inside\n');
  });

  test('XML entity expansion is not performed', async () => {
    const lol = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
      + '<D:propfind xmlns:D="DAV:"><D:prop><D:x>&c;</D:x></D:prop></D:propfind>';
    const started = Date.now();
    const res = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0' }, lol);
    assert.ok(res.status === 400 || res.status === 207, `PROPFIND with entities → ${res.status}`);
    assert.ok(!res.body.toString().includes('aaaaaaaaaaaaaaaaaaaa'), 'an entity was expanded into the response');
    assert.ok(Date.now() - started < 5000);
    const ext = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]><D:propfind xmlns:D="DAV:"><D:prop><D:x>&x;</D:x></D:prop></D:propfind>';
    const r2 = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0' }, ext);
    assert.ok(r2.status === 400 || r2.status === 207, `external entity → ${r2.status}`);
    assert.ok(!r2.body.toString().includes(PASSWD_MARK));
  });

  test('oversized XML bodies are refused with 413', async () => {
    const big = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>' + '<D:getetag/>'.repeat(200) + '</D:prop></D:propfind>';
    assert.ok(big.length > XML_LIMIT);
    const withLength = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0', 'content-type': 'application/xml' }, big);
    assert.equal(withLength.status, 413);
    // Chunked: no Content-Length to look at, the limit must hold while reading.
    const chunked = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0', 'transfer-encoding': 'chunked', 'content-type': 'application/xml' }, big);
    assert.equal(chunked.status, 413);
    const lock = await raw(gw.url, 'LOCK', '/file.txt', { 'content-type': 'application/xml' }, big);
    assert.equal(lock.status, 413);
    const small = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0' }, '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>');
    assert.equal(small.status, 207, 'positive control: a body under the limit is served');
  });

  test('Depth header: bad values 400, infinity 403 propfind-finite-depth', async () => {
    for (const depth of ['2', 'foo', '-1']) {
      const res = await raw(gw.url, 'PROPFIND', '/', { depth });
      assert.equal(res.status, 400, `Depth: ${depth}`);
    }
    for (const depth of ['infinity', 'Infinity']) {
      const res = await raw(gw.url, 'PROPFIND', '/', { depth });
      assert.equal(res.status, 403);
      assert.match(res.body.toString(), /propfind-finite-depth/);
    }
    // No Depth: RFC 4918 says infinity, but clients that omit it want a listing; with infinity
    // disabled it is answered as Depth 1 : the children, not the grandchildren.
    const absent = await raw(gw.url, 'PROPFIND', '/', {});
    assert.equal(absent.status, 207);
    assert.match(absent.body.toString(), /<D:href>\/file\.txt<\/D:href>/);
    assert.doesNotMatch(absent.body.toString(), /<D:href>\/[^<]+\/[^<]+[^/]<\/D:href>/, 'no entry two levels down');
  });

  describe('ranges and conditionals on a 100-byte file', () => {
    const bytes = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
    let etag: string;

    before(async () => {
      const res = await raw(gw.url, 'GET', '/hundred.bin');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, bytes);
      etag = String(res.headers.etag);
      assert.match(etag, /^"/);
    });

    test('bytes=500-600 → 416 with Content-Range: bytes */100', async () => {
      const res = await raw(gw.url, 'GET', '/hundred.bin', { range: 'bytes=500-600' });
      assert.equal(res.status, 416);
      assert.equal(res.headers['content-range'], 'bytes */100');
    });

    test('bytes=-10 → 206 with the last 10 bytes', async () => {
      const res = await raw(gw.url, 'GET', '/hundred.bin', { range: 'bytes=-10' });
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 90-99/100');
      assert.deepEqual(res.body, bytes.subarray(90));
    });

    test('bytes=10- → 206 from byte 10 to the end', async () => {
      const res = await raw(gw.url, 'GET', '/hundred.bin', { range: 'bytes=10-' });
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 10-99/100');
      assert.equal(res.headers['content-length'], '90');
      assert.deepEqual(res.body, bytes.subarray(10));
    });

    test('bytes=5-9 → 206 Content-Range: bytes 5-9/100', async () => {
      const res = await raw(gw.url, 'GET', '/hundred.bin', { range: 'bytes=5-9' });
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 5-9/100');
      assert.deepEqual(res.body, bytes.subarray(5, 10));
    });

    test('If-Range with a wrong etag → 200 full, with the right one → 206', async () => {
      const wrong = await raw(gw.url, 'GET', '/hundred.bin', { range: 'bytes=5-9', 'if-range': '"not-the-etag"' });
      assert.equal(wrong.status, 200);
      assert.deepEqual(wrong.body, bytes);
      assert.equal(wrong.headers['content-range'], undefined);
      const right = await raw(gw.url, 'GET', '/hundred.bin', { range: 'bytes=5-9', 'if-range': etag });
      assert.equal(right.status, 206);
      assert.deepEqual(right.body, bytes.subarray(5, 10));
    });

    test('If-None-Match with the etag → 304 without a body', async () => {
      const res = await raw(gw.url, 'GET', '/hundred.bin', { 'if-none-match': etag });
      assert.equal(res.status, 304);
      assert.equal(res.body.length, 0);
      const other = await raw(gw.url, 'GET', '/hundred.bin', { 'if-none-match': '"other"' });
      assert.equal(other.status, 200);
    });

    test('If-Modified-Since in the future → 304, in the past → 200', async () => {
      const future = await raw(gw.url, 'GET', '/hundred.bin', { 'if-modified-since': new Date(Date.now() + 86_400_000).toUTCString() });
      assert.equal(future.status, 304);
      const past = await raw(gw.url, 'GET', '/hundred.bin', { 'if-modified-since': new Date(0).toUTCString() });
      assert.equal(past.status, 200);
      assert.deepEqual(past.body, bytes);
    });
  });

  test('over-long names are a client error (4xx), not 502 from the upstream', async () => {
    const long = '/' + 'n'.repeat(300);
    const deep = '/a/' + ('d'.repeat(200) + '/').repeat(25) + 'x';
    for (const [method, path, headers, body] of [
      ['GET', long, {}, undefined], ['PUT', long, {}, 'x'], ['MKCOL', long, {}, undefined], ['PROPFIND', long, { depth: '0' }, undefined],
      ['DELETE', long, {}, undefined], ['GET', deep, {}, undefined], ['COPY', '/file.txt', { destination: long }, undefined],
    ] as const) {
      const res = await raw(gw.url, method, path, headers, body);
      assert.ok(res.status >= 400 && res.status < 500, `${method} ${path.slice(0, 20)}… ${JSON.stringify(headers).slice(0, 40)} → ${res.status} ${res.body.toString()}`);
    }
  });

  test('GET on a file URL with a trailing slash is 404, like PROPFIND', async () => {
    const pf = await raw(gw.url, 'PROPFIND', '/file.txt/', { depth: '0' });
    assert.equal(pf.status, 404);
    const get = await raw(gw.url, 'GET', '/file.txt/');
    assert.equal(get.status, 404);
  });

  test('an absolute-form request target is accepted (RFC 9112 §3.2.2) and still confined', async () => {
    const trav = await raw(gw.url, 'GET', `http://127.0.0.1:${port}/../secret.txt`);
    assert.ok([400, 403, 404].includes(trav.status), `absolute-form traversal → ${trav.status}`);
    assert.ok(!trav.body.toString().includes(SECRET));
    const res = await raw(gw.url, 'GET', `http://127.0.0.1:${port}/file.txt`);
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'inside\n');
  });

  describe('PROPPATCH', () => {
    const update = (value: string) => '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:colour>'
      + value + '</Z:colour></D:prop></D:set></D:propertyupdate>';
    const propfindColour = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><Z:colour/></D:prop></D:propfind>';

    test('a PROPPATCH with Content-Length is applied', async () => {
      const res = await raw(gw.url, 'PROPPATCH', '/file.txt', { 'content-type': 'application/xml' }, update('red'));
      assert.equal(res.status, 207);
      const pf = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0' }, propfindColour);
      assert.match(pf.body.toString(), />red</);
    });

    test('a chunked PROPPATCH (no Content-Length) is applied too', async () => {
      const res = await raw(gw.url, 'PROPPATCH', '/file.txt', { 'content-type': 'application/xml', 'transfer-encoding': 'chunked' }, update('green'));
      assert.equal(res.status, 207);
      const pf = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0' }, propfindColour);
      assert.match(pf.body.toString(), />green</);
    });

    test('the 207 names the property with the namespace and local name that were sent', async () => {
      const res = await raw(gw.url, 'PROPPATCH', '/file.txt', { 'content-type': 'application/xml' }, update('blue'));
      assert.equal(res.status, 207);
      const xml = res.body.toString();
      assert.match(xml, /<(?:(\w+):)?colour\b[^>]*xmlns(?::\w+)?="urn:z"/, xml);
      assert.ok(!xml.includes('zcolour'), xml);
    });

    test('from a page of another site: refused, with no permissive CORS headers, nothing changed', async () => {
      const res = await raw(gw.url, 'PROPPATCH', '/file.txt', { 'content-type': 'application/xml', origin: 'http://evil.example' }, update('black'));
      assert.equal(res.status, 403);
      const pf = await raw(gw.url, 'PROPFIND', '/file.txt', { depth: '0' }, propfindColour);
      assert.match(pf.body.toString(), />blue</);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
      assert.equal(res.headers['access-control-allow-credentials'], undefined);
      assert.doesNotMatch(String(res.headers.server ?? ''), /webdav-server/);
    });
  });

  test('COPY/MOVE: missing Destination 400, Overwrite: F on an existing destination 412', async () => {
    for (const method of ['COPY', 'MOVE']) {
      const res = await raw(gw.url, method, '/keep.txt');
      assert.equal(res.status, 400, `${method} without Destination`);
      const f = await raw(gw.url, method, '/keep.txt', { destination: '/file.txt', overwrite: 'F' });
      assert.equal(f.status, 412, `${method} Overwrite: F`);
      assert.equal(await readFile(join(root, 'file.txt'), 'utf8'), 'inside\n');
      assert.equal(await readFile(join(root, 'keep.txt'), 'utf8'), 'keep me\n');
      const junk = await raw(gw.url, method, '/keep.txt', { destination: '/file.txt', overwrite: 'maybe' });
      assert.equal(junk.status, 400, `${method} Overwrite: maybe`);
      assert.equal(await readFile(join(root, 'file.txt'), 'utf8'), 'inside\n');
    }
  });

  test('PUT to a path whose parent is missing → 409', async () => {
    const res = await raw(gw.url, 'PUT', '/no-such-dir/child.txt', {}, 'x');
    assert.equal(res.status, 409);
    assert.equal(existsSync(join(root, 'no-such-dir')), false);
    const mk = await raw(gw.url, 'MKCOL', '/no-such-dir/sub');
    assert.equal(mk.status, 409);
  });

  test('an aborted PUT commits nothing and leaves no temporary file', async () => {
    const sock = net.connect(port, '127.0.0.1');
    await once(sock, 'connect');
    sock.on('error', () => {});
    sock.write(`PUT /aborted.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${1 << 20}\r\n\r\n`);
    sock.write(Buffer.alloc(100 * 1024, 0x61));
    // The upload must really be under way upstream, or this test proves nothing.
    assert.ok(await waitFor(async () => (await tmpLeftovers(root)).length > 0, 3000), 'the PUT never reached the upstream');
    sock.destroy();
    await sleep(100);
    assert.ok(await waitFor(async () => (await tmpLeftovers(root)).length === 0, 3000), `left behind: ${(await tmpLeftovers(root)).join(', ')}`);
    assert.equal(existsSync(join(root, 'aborted.bin')), false);
    const get = await raw(gw.url, 'GET', '/aborted.bin');
    assert.equal(get.status, 404);
  });

  test('an aborted PUT over an existing file leaves the old content in place', async () => {
    await writeFile(join(root, 'victim.txt'), 'original content\n');
    assert.equal((await raw(gw.url, 'GET', '/victim.txt')).body.toString(), 'original content\n');
    const sock = net.connect(port, '127.0.0.1');
    await once(sock, 'connect');
    sock.on('error', () => {});
    sock.write(`PUT /victim.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${1 << 20}\r\n\r\n`);
    sock.write(Buffer.alloc(64 * 1024, 0x62));
    assert.ok(await waitFor(async () => (await tmpLeftovers(root)).length > 0, 3000), 'the PUT never reached the upstream');
    sock.destroy();
    assert.ok(await waitFor(async () => (await tmpLeftovers(root)).length === 0, 3000), `left behind: ${(await tmpLeftovers(root)).join(', ')}`);
    assert.equal(await readFile(join(root, 'victim.txt'), 'utf8'), 'original content\n');
    const get = await raw(gw.url, 'GET', '/victim.txt');
    assert.equal(get.status, 200);
    assert.equal(get.body.toString(), 'original content\n');
  });

  test('a short body (Content-Length 1000, 10 bytes, then half-close) commits nothing', async () => {
    const sock = net.connect(port, '127.0.0.1');
    await once(sock, 'connect');
    sock.on('error', () => {});
    let reply = '';
    sock.setEncoding('latin1');
    sock.on('data', (c: string) => { reply += c; });
    const closed = once(sock, 'close');
    sock.write('PUT /short.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n');
    sock.write('0123456789');
    assert.ok(await waitFor(async () => (await tmpLeftovers(root)).length > 0, 3000), 'the PUT never reached the upstream');
    sock.end();
    const timedOut = await Promise.race([closed.then(() => false), sleep(5000).then(() => true)]);
    if (timedOut) sock.destroy();
    assert.ok(!/^HTTP\/1\.1 2/.test(reply), `a short body was answered ${reply.split('\r\n')[0]}`);
    assert.ok(await waitFor(async () => (await tmpLeftovers(root)).length === 0, 3000), `left behind: ${(await tmpLeftovers(root)).join(', ')}`);
    assert.equal(existsSync(join(root, 'short.bin')), false);
    assert.equal((await raw(gw.url, 'GET', '/short.bin')).status, 404);
  });

  test('after everything the gateway still answers OPTIONS, and nothing escaped', async () => {
    const res = await raw(gw.url, 'OPTIONS', '/');
    assert.equal(res.status, 200);
    assert.equal(res.headers.dav, '1, 2, sabredav-partialupdate');
    assert.equal(await readFile(join(parent, 'secret.txt'), 'utf8'), SECRET);
    assert.deepEqual(await walk(parent, root), outsideBefore);
    assert.deepEqual(await tmpLeftovers(root), []);
  });
});

// Malformed PROPPATCH bodies once escaped as uncaught exceptions (when webdav-server handled
// PROPPATCH); run them against the real CLI process so a regression cannot hit this test process.
describe('malformed PROPPATCH bodies (real gateway process)', () => {
  let proc: GatewayProcess;

  before(async () => {
    proc = await startGatewayProcess({ args: ['--log-level', 'silent'] });
    await writeFile(join(proc.upstreamDir, 'file.txt'), 'inside\n');
  });
  after(async () => { await proc?.stop(); });

  test('PROPPATCH with a malformed or non-DAV body → 4xx', async () => {
    for (const body of ['<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:propfind', '<<<not xml at all', '']) {
      const res = await raw(proc.url, 'PROPPATCH', '/file.txt', { 'content-type': 'application/xml' }, body, 5000);
      assert.ok(res.status >= 400 && res.status < 500, `PROPPATCH ${JSON.stringify(body)} → ${res.status}`);
    }
    assert.equal((await raw(proc.url, 'OPTIONS', '/')).status, 200);
  });

  // Was a bug until 971f218: webdav-server threw from a callback and the request hung 60 s.
  test('PROPPATCH whose DAV:set/DAV:remove has no DAV:prop → 400 promptly', async () => {
    for (const body of [
      '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set/></D:propertyupdate>',
      '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:remove/></D:propertyupdate>',
      '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:foo/></D:set></D:propertyupdate>',
      '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set>',
    ]) {
      const res = await raw(proc.url, 'PROPPATCH', '/file.txt', { 'content-type': 'application/xml' }, body, 5000);
      assert.ok(res.status >= 400 && res.status < 500, `PROPPATCH ${body} → ${res.status}`);
    }
  });

  test('the gateway process survives every malformed PROPPATCH and keeps answering', async () => {
    // Whatever the answer (or the lack of one), the process must be there afterwards.
    await raw(proc.url, 'PROPPATCH', '/file.txt', {}, '<D:propertyupdate xmlns:D="DAV:"><D:set/></D:propertyupdate>', 1000).catch(() => undefined);
    assert.ok(proc.alive(), 'the gateway process died');
    assert.equal((await raw(proc.url, 'OPTIONS', '/')).status, 200);
    assert.equal((await raw(proc.url, 'GET', '/file.txt')).body.toString(), 'inside\n');
  });
});
