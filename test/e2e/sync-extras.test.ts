// What sync clients and scripts use beyond plain WebDAV: compressed listings (curl
// --compressed, as a client that sends Accept-Encoding), ownCloud checksums (rclone's owncloud
// vendor uploads with OC-Checksum and checks against oc:checksums without downloading), and
// davgate's `cache` property, answered only when asked for by name.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/inproc.js';

const run = promisify(execFile);

/** The client runs as a child: the gateway under test lives in this process and must go on answering. */
async function curl(args: string[]): Promise<{ status: number; headers: string; body: string }> {
  const { stdout } = await run('curl', ['-s', '-D', '-', ...args], { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 << 20 });
  const split = stdout.indexOf('\r\n\r\n');
  const headers = stdout.slice(0, split).toLowerCase();
  return { status: Number(/^http\/[\d.]+ (\d+)/.exec(headers)?.[1] ?? 0), headers, body: stdout.slice(split + 4) };
}

/** Bytes on the wire of a response body, not decoded. */
async function wireBytes(args: string[]): Promise<number> {
  const { stdout } = await run('curl', ['-s', ...args], { encoding: 'buffer', timeout: 30_000, maxBuffer: 64 << 20 });
  return stdout.length;
}

const PROPFIND_CACHE = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:G="urn:davgate"><D:prop><D:getcontentlength/><G:cache/></D:prop></D:propfind>';

describe('sync-client extras', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ cache: { blockSize: 64 * 1024 } });
    await mkdir(join(gw.upstreamDir, 'many'));
    for (let i = 0; i < 2000; i++) await writeFile(join(gw.upstreamDir, 'many', `file-${String(i).padStart(5, '0')}.txt`), `${i}\n`);
    await writeFile(join(gw.upstreamDir, 'big.bin'), Buffer.alloc(3 * 64 * 1024, 7));
  });
  after(async () => { await gw?.close(); });

  test('PROPFIND and the browser page are compressed when the client accepts it, and say so', async () => {
    const plain = await curl(['-X', 'PROPFIND', '-H', 'Depth: 1', gw.url + 'many/']);
    assert.equal(plain.status, 207);
    assert.doesNotMatch(plain.headers, /content-encoding/);
    for (const enc of ['gzip', 'br']) {
      const z = await curl(['-X', 'PROPFIND', '-H', 'Depth: 1', '-H', `Accept-Encoding: ${enc}`, '--compressed', gw.url + 'many/']);
      assert.equal(z.status, 207);
      assert.match(z.headers, new RegExp(`content-encoding: ${enc}`));
      assert.match(z.headers, /vary: .*accept-encoding/);
      assert.equal(z.body, plain.body, `${enc}: the same document`);
      const wire = await wireBytes(['-X', 'PROPFIND', '-H', 'Depth: 1', '-H', `Accept-Encoding: ${enc}`, gw.url + 'many/']);
      assert.ok(wire * 5 < plain.body.length, `${enc}: ${wire} bytes on the wire for ${plain.body.length}`);
    }
    assert.equal((plain.body.match(/<D:response>/g) ?? []).length, 2001);
    const page = await curl(['--compressed', '-H', 'Accept-Encoding: gzip', '-H', 'Accept: text/html', gw.url + 'many/']);
    assert.match(page.headers, /content-encoding: gzip/);
    assert.equal((page.body.match(/<tr data-name=/g) ?? []).length, 2000);
    const refused = await curl(['-X', 'PROPFIND', '-H', 'Depth: 0', '-H', 'Accept-Encoding: gzip;q=0, br;q=0', gw.url]);
    assert.doesNotMatch(refused.headers, /content-encoding/);
  });

  test('the cache property: bytes of the file held here, its size, pinned; only when asked for', async () => {
    const ask = () => curl(['-X', 'PROPFIND', '-H', 'Depth: 0', '-H', 'Content-Type: application/xml', '--data-binary', PROPFIND_CACHE, gw.url + 'big.bin']);
    const cold = await ask();
    assert.equal(cold.status, 207);
    assert.match(cold.body, /<cached-bytes xmlns="urn:davgate">0<\/cached-bytes><size xmlns="urn:davgate">196608<\/size><pinned xmlns="urn:davgate">false<\/pinned>/);
    await (await fetch(gw.url + 'big.bin', { headers: { range: 'bytes=70000-70010' } })).arrayBuffer();
    await gw.gateway.cache.flush();
    assert.match((await ask()).body, /<cached-bytes xmlns="urn:davgate">65536<\/cached-bytes>/, 'the one block read');
    const all = await curl(['-X', 'PROPFIND', '-H', 'Depth: 0', gw.url + 'big.bin']);
    assert.doesNotMatch(all.body, /urn:davgate/, 'not in allprop');
    const patch = await curl(['-X', 'PROPPATCH', '-H', 'Content-Type: application/xml', '--data-binary',
      '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:G="urn:davgate"><D:set><D:prop><G:cache>1</G:cache></D:prop></D:set></D:propertyupdate>', gw.url + 'big.bin']);
    assert.equal(patch.status, 207);
    assert.match(patch.body, /403 Forbidden/, 'protected');
    const dir = await curl(['-X', 'PROPFIND', '-H', 'Depth: 0', '--data-binary', PROPFIND_CACHE, gw.url + 'many/']);
    assert.match(dir.body, /404 Not Found/, 'a folder has no cache property');
  });

  test('rclone (owncloud vendor) uploads with OC-Checksum, then checks every file without downloading', async () => {
    const local = await mkdtemp(join(tmpdir(), 'davgate-rclone-check-'));
    try {
      await mkdir(join(local, 'sub'));
      await writeFile(join(local, 'one.txt'), 'one\n');
      await writeFile(join(local, 'sub', 'two.bin'), randomBytes(5 * 64 * 1024 + 17));
      await writeFile(join(local, 'empty'), '');
      await mkdir(join(gw.upstreamDir, 'synced')); // the remote's root exists, as on a real server
      const conf = join(local, '..', `rclone-${process.pid}.conf`);
      await writeFile(conf, '');
      const rclone = async (args: string[]) => {
        const env = { ...process.env, RCLONE_CONFIG_OC_TYPE: 'webdav', RCLONE_CONFIG_OC_URL: gw.url + 'synced/', RCLONE_CONFIG_OC_VENDOR: 'owncloud' };
        try {
          const r = await run('rclone', [...args, '--config', conf], { encoding: 'utf8', timeout: 60_000, env });
          return { status: 0, stdout: r.stdout, stderr: r.stderr };
        } catch (err) {
          const e = err as { code?: number; stdout?: string; stderr?: string };
          return { status: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
        }
      };
      const copy = await rclone(['copy', local, 'oc:']);
      assert.equal(copy.status, 0, copy.stderr);
      const want = createHash('sha1').update(await readFile(join(local, 'sub', 'two.bin'))).digest('hex');
      const sums = await rclone(['hashsum', 'SHA1', 'oc:']);
      assert.equal(sums.status, 0, sums.stderr);
      assert.match(sums.stdout, new RegExp(`^${want}  sub/two\\.bin$`, 'm'));
      gw.upstream.reset();
      const check = await rclone(['check', local, 'oc:']);
      assert.equal(check.status, 0, check.stderr);
      assert.match(check.stderr, /0 differences found/);
      assert.match(check.stderr, /3 matching files/);
      assert.equal(gw.upstream.count('read'), 0, 'nothing was downloaded');
      await rm(conf, { force: true });
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  test('OC-Checksum: a body that does not match is refused and nothing is stored; a file changed behind davgate has none', async () => {
    const body = 'checked body\n';
    const sha1 = createHash('sha1').update(body).digest('hex');
    const md5 = createHash('md5').update(body).digest('hex');
    const bad = await curl(['-X', 'PUT', '-H', `OC-Checksum: SHA1:${'0'.repeat(40)}`, '--data-binary', body, gw.url + 'bad.txt']);
    assert.equal(bad.status, 400);
    assert.equal((await fetch(gw.url + 'bad.txt')).status, 404);
    assert.equal((await curl(['-X', 'PUT', '-H', 'OC-Checksum: SHA1:xyz', '--data-binary', body, gw.url + 'bad.txt'])).status, 400);
    const ok = await curl(['-X', 'PUT', '-H', `OC-Checksum: MD5:${md5}`, '--data-binary', body, gw.url + 'good.txt']);
    assert.equal(ok.status, 201);
    const ask = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:oc="http://owncloud.org/ns"><D:prop><oc:checksums/></D:prop></D:propfind>';
    const pf = await curl(['-X', 'PROPFIND', '-H', 'Depth: 0', '--data-binary', ask, gw.url + 'good.txt']);
    assert.match(pf.body, new RegExp(`<checksum xmlns="http://owncloud.org/ns">SHA1:${sha1} MD5:${md5}</checksum>`));
    assert.doesNotMatch((await curl(['-X', 'PROPFIND', '-H', 'Depth: 0', gw.url + 'good.txt'])).body, /urn:davgate:internal/, 'never listed');
    await writeFile(join(gw.upstreamDir, 'good.txt'), 'changed elsewhere\n');
    await gw.gateway.cache.invalidate('/good.txt');
    const after = await curl(['-X', 'PROPFIND', '-H', 'Depth: 0', '--data-binary', ask, gw.url + 'good.txt']);
    assert.doesNotMatch(after.body, /SHA1:/, 'the old checksums are not served for new content');
  });
});
