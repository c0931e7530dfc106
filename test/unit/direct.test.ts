import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { DirectRanges, type Head } from '../../src/upstream/direct.js';

// DirectRanges against a real TCP server whose answers the test writes byte for byte.

type Answer = (req: string, sock: net.Socket) => void;

async function server(answer: Answer): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((sock) => {
    connections++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        const req = buf.slice(0, i);
        buf = buf.slice(i + 4);
        answer(req, sock);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => connections,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); srv.close(() => r()); }),
  };
}

const DATA = randomBytes(300_000);

/** A 206 of bytes a-b of DATA, parsed from the Range header. */
function partial(req: string, sock: net.Socket, extraHeaders = ''): void {
  const m = /range: bytes=(\d+)-(\d+)/i.exec(req)!;
  const a = Number(m[1]);
  const b = Math.min(Number(m[2]), DATA.length - 1);
  sock.write(`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${a}-${b}/${DATA.length}\r\nContent-Length: ${b - a + 1}\r\nETag: "v1"\r\n${extraHeaders}\r\n`);
  // In pieces, so reads land in several places of the target buffer.
  const body = DATA.subarray(a, b + 1);
  for (let off = 0; off < body.length; off += 7000) sock.write(body.subarray(off, off + 7000));
}

const is206 = (h: Head) => h.status === 206;

describe('DirectRanges', () => {
  let srv: Awaited<ReturnType<typeof server>>;
  let mode = 'ok';
  /** A client of the test server, as the backends make theirs. */
  const client = (timeoutMs = 5000): DirectRanges => DirectRanges.forOrigin(new URL(`http://127.0.0.1:${srv.port}/`), timeoutMs, 4)!;
  before(async () => {
    srv = await server((req, sock) => {
      if (mode === 'ok') partial(req, sock);
      else if (mode === 'close-after') { partial(req, sock); setTimeout(() => sock.end(), 20); }
      else if (mode === 'chunked') sock.write('HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
      else if (mode === '200') sock.write(`HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc`);
      else if (mode === 'silent') { /* never answers */ }
      else if (mode === 'garbage') { partial(req, sock); setTimeout(() => sock.write('HTTP/1.1 200 OK\r\n\r\n'), 20); }
      else if (mode === 'too-long') sock.write(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${DATA.length}\r\n\r\n`);
    });
  });
  after(() => srv.close());

  test('a 206 lands in the buffer, progress grows to the length, the socket is reused', async () => {
    mode = 'ok';
    const d = client();
    const before = srv.connections();
    for (const [a, n] of [[0, 100_000], [123_457, 50_000], [299_000, 1000]] as const) {
      const into = Buffer.alloc(n);
      const seen: number[] = [];
      const r = await d.get('/f', { range: `bytes=${a}-${a + n - 1}` }, into, is206, (f) => seen.push(f));
      assert.equal(r.taken, true);
      assert.equal(r.got, n);
      assert.ok(into.equals(DATA.subarray(a, a + n)));
      assert.equal(seen.at(-1), n);
      assert.deepEqual(seen, [...seen].sort((x, y) => x - y));
      assert.equal(r.head.headers.etag, '"v1"');
    }
    assert.equal(srv.connections() - before, 1, 'one connection for three requests');
    d.close();
  });

  test('a short answer at the end of the file gives the bytes there are', async () => {
    mode = 'ok';
    const d = client();
    const into = Buffer.alloc(10_000);
    const r = await d.get('/f', { range: `bytes=295000-304999` }, into, is206, () => {});
    assert.equal(r.got, 5000);
    assert.ok(into.subarray(0, 5000).equals(DATA.subarray(295_000)));
    d.close();
  });

  test('a kept-alive socket the server closed meanwhile: the request goes out again on a new one', async () => {
    mode = 'close-after';
    const d = client();
    const into = Buffer.alloc(1000);
    await d.get('/f', { range: 'bytes=0-999' }, into, is206, () => {});
    await new Promise((r) => setTimeout(r, 60));
    const r = await d.get('/f', { range: 'bytes=1000-1999' }, into, is206, () => {});
    assert.equal(r.taken, true);
    assert.ok(into.equals(DATA.subarray(1000, 2000)));
    d.close();
  });

  test('answers it does not take (chunked, a 200, a body longer than asked) write nothing', async () => {
    const d = client();
    for (const m of ['chunked', '200', 'too-long']) {
      mode = m;
      const into = Buffer.alloc(1000, 0x55);
      const r = await d.get('/f', { range: 'bytes=0-999' }, into, is206, () => assert.fail('no progress'));
      assert.equal(r.taken, false, m);
      assert.ok(into.every((b) => b === 0x55), `${m}: buffer untouched`);
    }
    mode = 'ok';
    const into = Buffer.alloc(1000);
    assert.equal((await d.get('/f', { range: 'bytes=0-999' }, into, is206, () => {})).taken, true, 'a fresh socket after the refused ones');
    d.close();
  });

  test('bytes arriving on an idle socket close it; the next request uses a new one', async () => {
    mode = 'garbage';
    const d = client();
    const into = Buffer.alloc(1000);
    await d.get('/f', { range: 'bytes=0-999' }, into, is206, () => {});
    await new Promise((r) => setTimeout(r, 60));
    mode = 'ok';
    const before = srv.connections();
    const r = await d.get('/f', { range: 'bytes=5000-5999' }, into, is206, () => {});
    assert.ok(r.taken && into.equals(DATA.subarray(5000, 6000)));
    assert.equal(srv.connections() - before, 1);
    d.close();
  });

  test('a header value with a line break is never sent', async () => {
    mode = 'ok';
    const d = client();
    const before = srv.connections();
    await assert.rejects(d.get('/f', { authorization: 'Basic x\r\nX-Evil: 1' }, Buffer.alloc(10), is206, () => {}), { code: 'UND_ERR_INVALID_ARG' });
    assert.equal(srv.connections(), before);
    d.close();
  });

  test('a server that never answers: ETIMEDOUT after the timeout', async () => {
    mode = 'silent';
    const d = client(300);
    const t0 = Date.now();
    await assert.rejects(d.get('/f', { range: 'bytes=0-9' }, Buffer.alloc(10), is206, () => {}), { code: 'ETIMEDOUT' });
    assert.ok(Date.now() - t0 < 3000);
    d.close();
  });

  test('range(): a 206 from the offset of this version is taken; another version, or a 200, is not, and after a 200 no more direct GETs', async () => {
    mode = 'ok';
    const d = client();
    const into = Buffer.alloc(2000);
    const got = await d.range('/f', { range: 'bytes=1000-2999' }, 1000, into, (h, total) => h.headers.etag === '"v1"' && total === DATA.length, () => {});
    assert.ok(got?.equals(DATA.subarray(1000, 3000)));
    assert.equal(await d.range('/f', { range: 'bytes=1000-2999' }, 999, into, () => true, () => {}), undefined, 'Content-Range starts elsewhere');
    assert.equal(await d.range('/f', { range: 'bytes=0-1999' }, 0, into, (h) => h.headers.etag === '"v2"', () => {}), undefined, 'another version');
    mode = '200';
    assert.equal(await d.range('/f', { range: 'bytes=0-2' }, 0, into, () => true, () => {}), undefined);
    mode = 'ok';
    const before = srv.connections();
    assert.equal(await d.range('/f', { range: 'bytes=0-1999' }, 0, into, () => true, () => {}), undefined, 'switched off after the 200');
    assert.equal(srv.connections(), before, 'and nothing sent');
    d.close();
  });

  test('only plain-HTTP origins get direct reads', () => {
    assert.equal(DirectRanges.forOrigin(new URL('https://127.0.0.1/'), 5000, 4), undefined);
  });

  test('a refused connection is an error, not a hang', async () => {
    const d = new DirectRanges('127.0.0.1', 1, '127.0.0.1:1', 2000, 4);
    await assert.rejects(d.get('/f', {}, Buffer.alloc(10), is206, () => {}));
    d.close();
  });
});
