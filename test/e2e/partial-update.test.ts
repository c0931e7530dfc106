// Partial updates with real clients: curl sending Apache's PUT + Content-Range and sabre/dav's
// PATCH + X-Update-Range, and the `webdav` npm client's partialUpdateFileContents (which picks
// the dialect from the DAV header). Through the directory upstream and a WebDAV one (nginx):
// the new bytes land upstream, the gateway serves them at once, nonsense ranges change nothing.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createClient } from 'webdav';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { startNginxDav, type DavServer } from '../helpers/dav-servers.js';

interface Curl { status: number; headers: string; body: string }

/** curl -X METHOD with these headers and body (a Buffer is sent as is). */
function curl(url: string, method: string, headers: Record<string, string> = {}, body?: Buffer | string): Curl {
  const args = ['-s', '-i', '-X', method, '-H', 'Expect:', url]; // one answer, no 100 Continue
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  if (body !== undefined) args.push('--data-binary', '@-');
  const r = spawnSync('curl', args, { input: body, encoding: 'latin1', timeout: 30_000 });
  const text = r.stdout;
  const split = text.indexOf('\r\n\r\n');
  const head = text.slice(0, split);
  return { status: Number(/^HTTP\/[\d.]+ (\d+)/.exec(head)?.[1] ?? 0), headers: head.toLowerCase(), body: text.slice(split + 4) };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function get(url: string): Promise<Buffer> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

const SABRE = { 'content-type': 'application/x-sabredav-partialupdate' };

for (const kind of ['dir', 'webdav'] as const) {
  describe(`partial updates, ${kind} upstream`, () => {
    let gw: GatewayProcess;
    let nginx: DavServer | undefined;
    let root: string;
    before(async () => {
      if (kind === 'webdav') {
        nginx = await startNginxDav();
        root = nginx.root;
        gw = await startGatewayProcess({ upstream: nginx.url });
      } else {
        gw = await startGatewayProcess({});
        root = gw.upstreamDir;
      }
    });
    after(async () => {
      await gw?.stop();
      await nginx?.stop();
    });
    const upstreamFile = (name: string) => readFile(join(root, name));

    test('PUT with Content-Range rewrites the range; the cache serves the new bytes at once', async () => {
      await writeFile(join(root, 'a.txt'), '0123456789');
      assert.equal((await get(gw.url + 'a.txt')).toString(), '0123456789', 'cached first');
      const before = curl(gw.url + 'a.txt', 'HEAD');
      const r = curl(gw.url + 'a.txt', 'PUT', { 'content-range': 'bytes 2-4/*' }, 'XYZ');
      assert.equal(r.status, 204, r.body);
      assert.equal((await upstreamFile('a.txt')).toString(), '01XYZ56789');
      assert.equal((await get(gw.url + 'a.txt')).toString(), '01XYZ56789');
      assert.notEqual(/etag: (.*)/.exec(r.headers)?.[1], /etag: (.*)/.exec(before.headers)?.[1]);
      // With the total given, and running past the end: the file grows.
      assert.equal(curl(gw.url + 'a.txt', 'PUT', { 'content-range': 'bytes 8-11/12' }, 'abcd').status, 204);
      assert.equal((await get(gw.url + 'a.txt')).toString(), '01XYZ567abcd');
    });

    test('PATCH with X-Update-Range: a range, an open range, the last bytes, append', async () => {
      await writeFile(join(root, 'p.txt'), '0123456789');
      assert.equal((await get(gw.url + 'p.txt')).toString(), '0123456789');
      const steps: Array<[string, string, string]> = [
        ['bytes=3-6', 'ABCD', '012ABCD789'],
        ['bytes=8-', 'xyz', '012ABCD7xyz'],
        ['bytes=-2', 'QR', '012ABCD7xQR'],
        ['append', '!!', '012ABCD7xQR!!'],
      ];
      for (const [range, body, want] of steps) {
        const r = curl(gw.url + 'p.txt', 'PATCH', { ...SABRE, 'x-update-range': range }, body);
        assert.equal(r.status, 204, `${range}: ${r.body}`);
        assert.equal((await get(gw.url + 'p.txt')).toString(), want, range);
      }
      assert.equal((await upstreamFile('p.txt')).toString(), '012ABCD7xQR!!');
    });

    test('ranges that make no sense are refused and change nothing', async () => {
      await writeFile(join(root, 'n.txt'), '0123456789');
      const cases: Array<[string, Record<string, string>, string, number]> = [
        ['PUT', { 'content-range': 'bytes 11-12/*' }, 'ab', 416], // a hole after the end
        ['PUT', { 'content-range': 'bytes 5-3/*' }, 'ab', 400],
        ['PUT', { 'content-range': 'bytes 0-3/*' }, 'ab', 400], // length does not match
        ['PUT', { 'content-range': 'bytes 0-3/2' }, 'abcd', 400], // past its own total
        ['PUT', { 'content-range': 'items 0-1/*' }, 'ab', 400],
        ['PATCH', { ...SABRE, 'x-update-range': 'bytes=20-21' }, 'ab', 416],
        ['PATCH', { ...SABRE, 'x-update-range': 'bytes=-11' }, 'ab', 416],
        ['PATCH', { ...SABRE, 'x-update-range': 'bytes=4-2' }, 'ab', 400],
        ['PATCH', { ...SABRE, 'x-update-range': 'bytes=0-9' }, 'ab', 400],
        ['PATCH', { ...SABRE, 'x-update-range': 'bytes=1-2,4-5' }, 'ab', 400],
        ['PATCH', { ...SABRE }, 'ab', 400], // no X-Update-Range
        ['PATCH', { 'content-type': 'text/plain', 'x-update-range': 'bytes=0-1' }, 'ab', 415],
        ['PATCH', { ...SABRE, 'x-update-range': 'bytes=0-1', 'if-match': '"not-this-one"' }, 'ab', 412],
        ['PATCH', { ...SABRE, 'x-update-range': 'append', 'transfer-encoding': 'chunked' }, 'ab', 411],
      ];
      for (const [method, headers, body, status] of cases) {
        const r = curl(gw.url + 'n.txt', method, headers, body);
        assert.equal(r.status, status, `${method} ${JSON.stringify(headers)}: ${r.status} ${r.body}`);
        if (status === 416) assert.match(r.headers, /content-range: bytes \*\/10/);
      }
      assert.equal((await upstreamFile('n.txt')).toString(), '0123456789');
      assert.equal((await get(gw.url + 'n.txt')).toString(), '0123456789');
      assert.equal(curl(gw.url + 'missing.txt', 'PATCH', { ...SABRE, 'x-update-range': 'bytes=0-1' }, 'ab').status, 404);
      assert.equal(curl(gw.url, 'PATCH', { ...SABRE, 'x-update-range': 'bytes=0-1' }, 'ab').status, 405);
      assert.match(curl(gw.url, 'OPTIONS').headers, /dav: 1, 2, sabredav-partialupdate/);
      assert.match(curl(gw.url, 'OPTIONS').headers, /allow: .*patch/);
    });

    test('a range across blocks of a big file; an aborted update leaves the old file', async () => {
      const data = randomBytes(9 * 1024 * 1024 + 123);
      await writeFile(join(root, 'big.bin'), data);
      assert.equal(sha(await get(gw.url + 'big.bin')), sha(data));
      const patch = randomBytes(3 * 1024 * 1024);
      const at = 4 * 1024 * 1024 - 1000; // over two block boundaries
      const r = curl(gw.url + 'big.bin', 'PATCH', { ...SABRE, 'x-update-range': `bytes=${at}-${at + patch.length - 1}` }, patch);
      assert.equal(r.status, 204, r.body);
      const want = Buffer.concat([data.subarray(0, at), patch, data.subarray(at + patch.length)]);
      assert.equal(sha(await upstreamFile('big.bin')), sha(want));
      assert.equal(sha(await get(gw.url + 'big.bin')), sha(want));
      // Half a body, then the client goes away.
      const url = new URL(gw.url);
      await new Promise<void>((resolve, reject) => {
        const sock = connect(Number(url.port), url.hostname, () => {
          sock.write(`PATCH /big.bin HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-sabredav-partialupdate\r\nX-Update-Range: bytes=0-999999\r\nContent-Length: 1000000\r\n\r\n`);
          sock.write(Buffer.alloc(400_000, 7), () => setTimeout(() => { sock.destroy(); resolve(); }, 200));
        });
        sock.on('error', reject);
      });
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(sha(await upstreamFile('big.bin')), sha(want), 'the aborted update changed nothing');
      assert.equal(sha(await get(gw.url + 'big.bin')), sha(want));
      if (kind === 'dir') {
        const temps = (await readdir(root, { recursive: true })).map(String).filter((p) => p !== '.davgate-tmp-uploads' && p.split('/').some((n) => n.startsWith('.davgate-tmp-')));
        assert.deepEqual(temps, [], 'no temp file left');
      }
    });

    test('the webdav client finds PATCH in the DAV header and updates a range', async () => {
      await writeFile(join(root, 'w.txt'), 'hello world');
      const client = createClient(gw.url);
      await client.partialUpdateFileContents('/w.txt', 6, 10, Buffer.from('WORLD'));
      assert.equal((await upstreamFile('w.txt')).toString(), 'hello WORLD');
      assert.equal(await client.getFileContents('/w.txt', { format: 'text' }), 'hello WORLD');
    });
  });
}
