// Fuzz: 10,000+ raw requests generated from a seed (fast-check) against a real gateway over a real
// directory with a marker file beside (outside) its root: methods, headers, paths in every
// traversal spelling, XML bodies, ranges, truncated and pipelined requests, clients that vanish.
// No answer may be a 500, none may hang, the process stays up, the marker is never served, and
// the tree changes only where a request was allowed to write.
// Replay a failure with DAVGATE_FUZZ_SEED=<seed printed below> (DAVGATE_FUZZ_RUNS for more).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { freeDir, removeDir, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

const SEED = Number(process.env.DAVGATE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const RUNS = Number(process.env.DAVGATE_FUZZ_RUNS ?? 10_000);
const MARKER = 'MARKER-outside-the-root-7f3a9c';
const HANG_MS = 5000;

// ---------------------------------------------------------------- generators

const names = ['a.txt', 'dir', 'dir/b.txt', 'w', 'w/x.bin', 'marker.txt', 'new', 'ü.txt', 'u\u0308.txt', '.davgate-tmp-uploads', 'LOCK', 'nodes.sqlite'];
const traversal = ['..', '.', '%2e%2e', '%2E%2E', '.%2e', '%2e.', '%252e%252e', '..%2f', '..%2F', '%2e%2e%2f', '..%5c', '..\\', '%00', '%00.txt', 'a%00b', '%ff', '%c0%ae%c0%ae', '%', '%zz', '//', '~', '*', '\u0000', '%0d%0aX-Injected:%201'];
const segment = fc.oneof(
  fc.constantFrom(...names.flatMap((n) => n.split('/'))),
  fc.constantFrom(...traversal),
  fc.stringMatching(/^[a-zA-Z0-9._~-]{1,12}$/),
  fc.string({ minLength: 1, maxLength: 8 }).map((s) => encodeURIComponent(s)),
  fc.constant('x'.repeat(300)),
);
const path = fc.oneof(
  fc.constantFrom(...names).map((n) => '/' + n),
  fc.array(segment, { minLength: 0, maxLength: 6 }).map((segs) => '/' + segs.join('/')),
  fc.tuple(fc.array(segment, { maxLength: 3 }), fc.constantFrom('?x=1', '#frag', '/', '?', ';p')).map(([s, t]) => '/' + s.join('/') + t),
  fc.constantFrom('*', 'http://other.example/a.txt', '/../marker.txt', '/%2e%2e/marker.txt', '/dir/..%2f..%2fmarker.txt'),
);
const method = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK') },
  { weight: 1, arbitrary: fc.constantFrom('POST', 'QUERY', 'PATCH', 'TRACE', 'SEARCH', 'REPORT', 'get', 'FOO', 'M-SEARCH') },
);
const xmlBody = fc.oneof(
  fc.constant('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'),
  fc.constant('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><X:y xmlns:X="urn:x"/></D:prop></D:propfind>'),
  fc.constant('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a>1</Z:a></D:prop></D:set><D:remove><D:prop><Z:b/></D:prop></D:remove></D:propertyupdate>'),
  fc.constant('<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>me</D:owner></D:lockinfo>'),
  fc.integer({ min: 65, max: 3000 }).map((n) => '<a>'.repeat(n) + '</a>'.repeat(n)),
  fc.constant('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><D:propfind xmlns:D="DAV:">&e;</D:propfind>'),
  fc.constant('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;&b;&b;</x>'),
  fc.string({ maxLength: 200 }),
).chain((x) => fc.oneof(fc.constant(x), fc.nat({ max: x.length }).map((n) => x.slice(0, n)))); // truncated XML too
const body = fc.oneof(fc.constant(''), xmlBody, fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b).toString('latin1')));
const headerPairs = fc.record({
  depth: fc.option(fc.constantFrom('0', '1', 'infinity', 'Infinity', '2', '-1', '', ' 1 ', 'one'), { nil: undefined }),
  range: fc.option(fc.oneof(fc.constantFrom('bytes=0-0', 'bytes=0-', 'bytes=-1', 'bytes=5-2', 'bytes=0-1,3-4', 'bytes=99999999-', 'items=0-1', 'bytes=', 'bytes=-0', 'bytes=1-2-3'),
    fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `bytes=${a}-${b}`)), { nil: undefined }),
  destination: fc.option(fc.oneof(path, path.map((p) => `http://127.0.0.1${p}`), fc.constantFrom('', '::', 'http://', 'file:///etc/passwd', '../../marker.txt')), { nil: undefined }),
  overwrite: fc.option(fc.constantFrom('T', 'F', 'X', ''), { nil: undefined }),
  if: fc.option(fc.constantFrom('(<urn:uuid:0>)', '(["etag"])', '<http://x/a> (Not <DAV:no-lock>)', '((', '(<', '(Not)', '()', 'garbage'), { nil: undefined }),
  'lock-token': fc.option(fc.constantFrom('<urn:uuid:1>', 'x', '<>'), { nil: undefined }),
  timeout: fc.option(fc.constantFrom('Second-1', 'Infinite', 'Second-99999999999999', 'bogus'), { nil: undefined }),
  'content-type': fc.option(fc.constantFrom('application/xml', 'text/xml; charset=utf-8', 'text/plain', 'multipart/form-data; boundary=x'), { nil: undefined }),
  'if-match': fc.option(fc.constantFrom('*', '"x"', 'W/"y"'), { nil: undefined }),
  'if-none-match': fc.option(fc.constantFrom('*', '"x"'), { nil: undefined }),
  'x-oc-mtime': fc.option(fc.constantFrom('0', '1700000000', '-5', '1e99', 'abc'), { nil: undefined }),
});
type Shape = 'normal' | 'truncated' | 'vanish' | 'pipelined' | 'bad-length';
const request = fc.record({
  method, path, headers: headerPairs, body,
  shape: fc.constantFrom<Shape>('normal', 'normal', 'normal', 'normal', 'truncated', 'vanish', 'pipelined', 'bad-length'),
});
type Req = { method: string; path: string; headers: Record<string, string | undefined>; body: string; shape: Shape };

// ---------------------------------------------------------------- the oracle

/** What a request may change: its target and destination, decoded here independently. */
function writable(r: Req): string[] {
  if (!['PUT', 'DELETE', 'MKCOL', 'COPY', 'MOVE', 'LOCK'].includes(r.method)) return [];
  const decode = (p: string | undefined): string | undefined => {
    if (!p) return undefined;
    const m = /^[a-z]+:\/\/[^/]*(\/.*)?$/i.exec(p);
    let raw = m ? (m[1] ?? '/') : p;
    raw = raw.split('?')[0]!;
    let d: string;
    try { d = decodeURIComponent(raw); } catch { return undefined; }
    const segs = d.split('/').filter((s) => s !== '' && s !== '.');
    if (segs.includes('..') || d.includes('\0')) return undefined;
    return segs.join('/');
  };
  return [decode(r.path), r.method === 'COPY' || r.method === 'MOVE' ? decode(r.headers.destination) : undefined]
    .filter((p): p is string => p !== undefined)
    .flatMap((p) => [p, p.normalize('NFC'), p.normalize('NFD')]);
}

async function snapshot(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (d: string): Promise<void> => {
    for (const n of await readdir(d)) {
      const full = join(d, n);
      const rel = relative(root, full);
      if (rel.startsWith('.davgate-tmp-')) continue; // uploads in flight: swept, never visible
      const st = await lstat(full).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) { out.set(rel, 'dir'); await visit(full); } else out.set(rel, createHash('sha1').update(await readFile(full)).digest('hex'));
    }
  };
  await visit(root);
  return out;
}

// ---------------------------------------------------------------- sending

interface Outcome { statuses: number[]; text: string; hung: boolean }

function wire(r: Req): Buffer {
  const body = Buffer.from(r.body, 'latin1');
  const lines = [`${r.method} ${r.path} HTTP/1.1`, 'Host: 127.0.0.1'];
  for (const [k, v] of Object.entries(r.headers)) if (v !== undefined) lines.push(`${k}: ${v.replace(/[\r\n]/g, '')}`);
  const length = r.shape === 'bad-length' ? body.length + 100 : body.length;
  if (body.length || r.shape === 'bad-length') lines.push(`Content-Length: ${length}`);
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), body]);
}

function send(port: number, r: Req): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (hung: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ statuses: [...text.matchAll(/HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n/g)].map((m) => Number(m[1])), text, hung });
    };
    const timer = setTimeout(() => finish(true), HANG_MS);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => finish(false));
    s.on('error', () => finish(false));
    s.on('connect', () => {
      const bytes = wire(r);
      if (r.shape === 'vanish') { s.write(bytes.subarray(0, Math.max(1, bytes.length >> 1)), () => finish(false)); return; }
      if (r.shape === 'truncated') { s.end(bytes.subarray(0, Math.max(1, bytes.length >> 1))); return; }
      s.write(r.shape === 'pipelined' ? Buffer.concat([bytes, Buffer.from('OPTIONS / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]) : bytes);
      // Half-close: the server answers, then closes; a body shorter than its Content-Length
      // (bad-length) then ends early, which the server must see as an aborted upload.
      if (r.shape === 'normal' || r.shape === 'bad-length') s.end();
    });
  });
}

describe(`fuzz: ${RUNS} raw requests, seed ${SEED}`, { timeout: 600_000 }, () => {
  let dir: string;
  let root: string;
  let gw: GatewayProcess;
  before(async () => {
    console.log(`# fuzz seed ${SEED} (replay: DAVGATE_FUZZ_SEED=${SEED})`);
    dir = await freeDir('davgate-fuzz');
    root = join(dir, 'root');
    await mkdir(join(root, 'dir'), { recursive: true });
    await mkdir(join(root, 'w'));
    await writeFile(join(root, 'a.txt'), 'alpha\n');
    await writeFile(join(root, 'dir', 'b.txt'), 'bravo\n'.repeat(1000));
    await writeFile(join(root, 'w', 'x.bin'), Buffer.alloc(70_000, 1));
    await writeFile(join(dir, 'marker.txt'), MARKER); // beside the root: must never be served
    gw = await startGatewayProcess({ upstream: root, args: ['--log-level', 'warn', '--allow-infinite-depth', '--block-size', '64KiB'] });
  });
  after(async () => {
    await gw?.stop();
    await removeDir(dir);
  });

  test('no 500, no hang, no escape, no change outside what requests could write', async () => {
    const requests = fc.sample(request, { numRuns: RUNS, seed: SEED }) as Req[];
    const port = Number(new URL(gw.url).port);
    const before = await snapshot(root);
    const allowed: string[] = [];
    const failures: string[] = [];
    let worst = 0;
    let next = 0;
    const classes = new Map<string, number>();
    const worker = async () => {
      while (next < requests.length && failures.length < 20) {
        const i = next++;
        const r = requests[i]!;
        allowed.push(...writable(r));
        const t0 = performance.now();
        const o = await send(port, r);
        worst = Math.max(worst, performance.now() - t0);
        for (const st of o.statuses) classes.set(`${Math.floor(st / 100)}xx`, (classes.get(`${Math.floor(st / 100)}xx`) ?? 0) + 1);
        const what = `#${i} ${r.shape} ${r.method} ${JSON.stringify(r.path).slice(0, 120)} ${JSON.stringify(r.headers).slice(0, 200)}`;
        if (o.statuses.some((s) => s >= 500 && s !== 501 && s !== 503 && s !== 507)) failures.push(`${what} → ${o.statuses.join(',')}: ${o.text.slice(0, 300)}`);
        if (o.hung) failures.push(`${what} → no answer within ${HANG_MS} ms`);
        if (o.text.includes(MARKER)) failures.push(`${what} → served the marker outside the root`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    console.log(`# fuzz: ${next} requests, worst answer ${Math.round(worst)} ms, answers ${JSON.stringify(Object.fromEntries(classes))}`);
    // The generator reaches the handlers, not only the parser: plenty of successes and refusals.
    assert.ok((classes.get('2xx') ?? 0) > RUNS / 10 && (classes.get('4xx') ?? 0) > RUNS / 10, JSON.stringify(Object.fromEntries(classes)));
    assert.deepEqual(failures, [], `seed ${SEED}`);
    assert.ok(gw.alive(), 'the gateway died');
    const res = await fetch(gw.url + 'a.txt');
    assert.ok(res.status === 200 || res.status === 404 || res.status === 423, `GET after the fuzz: ${res.status}`);
    const metrics = await (await fetch(gw.adminUrl + 'metrics')).text();
    assert.match(metrics, /^davgate_internal_errors_total 0$/m, `seed ${SEED}`);
    // Every path that appeared, changed or vanished lies at or under a path some request could write.
    const afterTree = await snapshot(root);
    const changed = [...new Set([...before.keys(), ...afterTree.keys()])].filter((p) => before.get(p) !== afterTree.get(p));
    const within = (p: string, a: string) => a === '' || p === a || p.startsWith(a + '/') || p.normalize('NFC') === a.normalize('NFC');
    const unexplained = changed.filter((p) => !allowed.some((a) => within(p, a)));
    assert.deepEqual(unexplained, [], `seed ${SEED}: changed where no request could write`);
    assert.equal(await readFile(join(dir, 'marker.txt'), 'utf8'), MARKER);
  });
});
