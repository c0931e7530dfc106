// Locks and dead properties beyond what litmus checks, against a real in-process gateway over a
// real directory: who a lock blocks and for how long, shared locks, refresh through a member,
// UNLOCK spellings, locks on unmapped URLs, lockdiscovery, persistence across a restart with the
// sqlite state, dead properties with arbitrary XML (namespaces, attributes, mixed content),
// PROPPATCH document order and atomicity, properties following MOVE/COPY/DELETE, the Windows
// Win32* properties and the RFC 4331 quota properties.
//
// Responses are parsed namespace-aware (saxes): a prefix is never taken to mean a namespace.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SaxesParser } from 'saxes';
import { startGateway, type TestGateway } from '../helpers/inproc.js';
import { sleep } from '../helpers/gateway-process.js';
import { propertyupdate, propfindBody, raw, type RawResponse } from '../helpers/http.js';

const DAV = 'DAV:';
const MS = 'urn:schemas-microsoft-com:';
const XML_NS = 'http://www.w3.org/XML/1998/namespace';

// ---------------------------------------------------------------- HTTP

const XML_HEADERS = { 'content-type': 'application/xml; charset=utf-8' };

function lockBody(scope: 'exclusive' | 'shared', owner = 'http://example.org/~alice'): string {
  return `<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:${scope}/></D:lockscope>`
    + `<D:locktype><D:write/></D:locktype><D:owner><D:href>${owner}</D:href></D:owner></D:lockinfo>`;
}

/** LOCK and return the response with the token (without the angle brackets). */
async function lock(base: string, path: string, opts: { scope?: 'exclusive' | 'shared'; depth?: string; timeout?: string; owner?: string; headers?: Record<string, string> } = {}): Promise<RawResponse & { token: string }> {
  const headers: Record<string, string> = { ...XML_HEADERS, ...opts.headers };
  if (opts.depth !== undefined) headers.depth = opts.depth;
  if (opts.timeout !== undefined) headers.timeout = opts.timeout;
  const res = await raw(base, 'LOCK', path, headers, lockBody(opts.scope ?? 'exclusive', opts.owner));
  const m = /^<(.+)>$/.exec(String(res.headers['lock-token'] ?? ''));
  return { ...res, token: m?.[1] ?? '' };
}

async function lockOk(base: string, path: string, opts: Parameters<typeof lock>[2] = {}): Promise<string> {
  const res = await lock(base, path, opts);
  assert.ok(res.status === 200 || res.status === 201, `LOCK ${path} → ${res.status} ${res.text.slice(0, 300)}`);
  assert.match(res.token, /^[a-z][a-z0-9+.-]*:\S+$/i, `LOCK ${path}: Lock-Token header ${String(res.headers['lock-token'])}`);
  return res.token;
}

// ---------------------------------------------------------------- XML

interface El {
  ns: string;
  local: string;
  attrs: Array<{ ns: string; local: string; value: string }>;
  children: El[];
  nodes: Array<El | string>;
  parent?: El;
}

/** Parse a document namespace-aware; keeps attributes (not namespace declarations) and mixed content. */
function parseDoc(text: string): El {
  const parser = new SaxesParser({ xmlns: true, position: false });
  const stack: El[] = [];
  let root: El | undefined;
  parser.on('opentag', (tag) => {
    const attrs: El['attrs'] = [];
    for (const a of Object.values(tag.attributes)) {
      if (typeof a === 'string' || a.prefix === 'xmlns' || a.name === 'xmlns') continue;
      attrs.push({ ns: a.uri ?? '', local: a.local ?? a.name, value: a.value });
    }
    const parent = stack[stack.length - 1];
    const el: El = { ns: tag.uri ?? '', local: tag.local ?? tag.name, attrs, children: [], nodes: [], parent };
    if (parent) { parent.children.push(el); parent.nodes.push(el); } else root = el;
    stack.push(el);
  });
  const onText = (t: string) => {
    const top = stack[stack.length - 1];
    if (!top) return;
    const last = top.nodes[top.nodes.length - 1];
    if (typeof last === 'string') top.nodes[top.nodes.length - 1] = last + t;
    else top.nodes.push(t);
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.on('closetag', () => { stack.pop(); });
  parser.write(text).close();
  assert.ok(root, 'response has no root element');
  return root;
}

function kids(el: El, ns: string, local: string): El[] {
  return el.children.filter((c) => c.ns === ns && c.local === local);
}
function kid(el: El, ns: string, local: string): El | undefined {
  return kids(el, ns, local)[0];
}
function descendants(el: El, ns: string, local: string): El[] {
  const out: El[] = [];
  const visit = (e: El) => { for (const c of e.children) { if (c.ns === ns && c.local === local) out.push(c); visit(c); } };
  visit(el);
  return out;
}
function textOf(el: El | undefined): string {
  if (!el) return '';
  return el.nodes.map((n) => (typeof n === 'string' ? n : textOf(n))).join('');
}

/** A canonical form of mixed content: namespaces by URI, attributes sorted, prefixes irrelevant. */
function canon(nodes: Array<El | string>): string {
  return nodes.map((n) => {
    if (typeof n === 'string') return JSON.stringify(n);
    const attrs = n.attrs.map((a) => `{${a.ns}}${a.local}=${JSON.stringify(a.value)}`).sort().join(' ');
    return `<{${n.ns}}${n.local} ${attrs}>${canon(n.nodes)}</>`;
  }).join('');
}

interface PropResult { status: number; el: El; propstat: El }

/** Every property of every response, keyed by href then by "{ns}local". */
function multistatus(text: string): Map<string, Map<string, PropResult>> {
  const doc = parseDoc(text);
  assert.equal(doc.ns, DAV);
  assert.equal(doc.local, 'multistatus');
  const out = new Map<string, Map<string, PropResult>>();
  for (const r of kids(doc, DAV, 'response')) {
    const href = decodeURIComponent(textOf(kid(r, DAV, 'href')).trim().replace(/^https?:\/\/[^/]+/, ''));
    const props = new Map<string, PropResult>();
    for (const ps of kids(r, DAV, 'propstat')) {
      const status = Number(/HTTP\/\d\.\d (\d{3})/.exec(textOf(kid(ps, DAV, 'status')))?.[1]);
      for (const p of kid(ps, DAV, 'prop')?.children ?? []) props.set(`{${p.ns}}${p.local}`, { status, el: p, propstat: ps });
    }
    out.set(href, props);
  }
  return out;
}

/** The properties of the one resource a Depth 0 PROPFIND or a PROPPATCH answered for. */
function only(text: string): Map<string, PropResult> {
  const all = multistatus(text);
  assert.equal(all.size, 1, `expected one response, got ${[...all.keys()].join(', ')}`);
  return [...all.values()][0]!;
}

describe('locks', () => {
  let gw: TestGateway;
  let url: string;

  before(async () => {
    gw = await startGateway({ cache: { ttl: 60_000 } });
    url = gw.url;
  });
  after(async () => { await gw?.close(); });

  const put = (path: string, body: string, headers: Record<string, string> = {}) => raw(url, 'PUT', path, headers, body);

  test('an exclusive lock on a file blocks every other writer with 423 until UNLOCK; reads still work', async () => {
    assert.equal((await raw(url, 'MKCOL', '/x1')).status, 201);
    assert.equal((await put('/x1/f.txt', 'v1')).status, 201);
    assert.equal((await put('/x1/other.txt', 'other')).status, 201);
    const token = await lockOk(url, '/x1/f.txt', { depth: '0' });

    const blocked: Array<[string, string, Record<string, string>, string?]> = [
      ['PUT', '/x1/f.txt', {}, 'intruder'],
      ['DELETE', '/x1/f.txt', {}],
      ['MOVE', '/x1/f.txt', { destination: '/x1/moved.txt' }],
      ['MOVE', '/x1/other.txt', { destination: '/x1/f.txt', overwrite: 'T' }],
      ['COPY', '/x1/other.txt', { destination: '/x1/f.txt', overwrite: 'T' }],
      ['PROPPATCH', '/x1/f.txt', XML_HEADERS, propertyupdate('<D:set><D:prop><Z:x>1</Z:x></D:prop></D:set>', ' xmlns:Z="urn:z"')],
      ['DELETE', '/x1', {}],
      ['MOVE', '/x1', { destination: '/x1-moved' }],
      ['LOCK', '/x1/f.txt', XML_HEADERS, lockBody('exclusive', 'mallory')],
      ['LOCK', '/x1/f.txt', XML_HEADERS, lockBody('shared', 'mallory')],
      ['LOCK', '/x1', { ...XML_HEADERS, depth: 'infinity' }, lockBody('exclusive', 'mallory')],
    ];
    for (const [method, path, headers, body] of blocked) {
      const res = await raw(url, method, path, headers, body);
      // A DELETE/MOVE of the parent may answer 207 with the 423 inside (RFC 4918 §9.6.1).
      const ok = res.status === 423 || (res.status === 207 && /423/.test(res.text) && (method === 'DELETE' || method === 'MOVE') && path === '/x1');
      assert.ok(ok, `${method} ${path} by another client → ${res.status} ${res.text.slice(0, 200)}`);
    }
    assert.equal(await readFile(join(gw.upstreamDir, 'x1/f.txt'), 'utf8'), 'v1', 'the locked file was changed');
    assert.ok(existsSync(join(gw.upstreamDir, 'x1/other.txt')));
    assert.ok(!existsSync(join(gw.upstreamDir, 'x1/moved.txt')));
    assert.ok(!existsSync(join(gw.upstreamDir, 'x1-moved')));

    // A token that is not the lock's fails the If header itself: 412.
    assert.equal((await put('/x1/f.txt', 'bogus', { if: '(<urn:uuid:00000000-0000-0000-0000-000000000000>)' })).status, 412);

    // Reads are not blocked by a write lock.
    const get = await raw(url, 'GET', '/x1/f.txt');
    assert.equal(get.status, 200);
    assert.equal(get.text, 'v1');
    const pf = await raw(url, 'PROPFIND', '/x1/f.txt', { depth: '0', ...XML_HEADERS }, propfindBody('<D:getcontentlength/>'));
    assert.equal(pf.status, 207);
    assert.equal(textOf(only(pf.text).get('{DAV:}getcontentlength')?.el), '2');
    // COPY from the locked resource only reads it.
    assert.equal((await raw(url, 'COPY', '/x1/f.txt', { destination: '/x1/copy-of-locked.txt' })).status, 201);

    assert.equal((await raw(url, 'UNLOCK', '/x1/f.txt', { 'lock-token': `<${token}>` })).status, 204);
    assert.equal((await put('/x1/f.txt', 'v2')).status, 204);
    assert.equal(await readFile(join(gw.upstreamDir, 'x1/f.txt'), 'utf8'), 'v2');
    assert.equal((await raw(url, 'DELETE', '/x1/f.txt')).status, 204);
  });

  test('the lock owner writes with If: (<token>) and with the tagged form If: <url> (<token>)', async () => {
    assert.equal((await raw(url, 'MKCOL', '/x2')).status, 201);
    assert.equal((await put('/x2/f.txt', 'v1')).status, 201);
    const token = await lockOk(url, '/x2/f.txt');
    const abs = new URL('/x2/f.txt', url).href;
    assert.equal((await put('/x2/f.txt', 'v2', { if: `(<${token}>)` })).status, 204);
    assert.equal((await put('/x2/f.txt', 'v3', { if: `<${abs}> (<${token}>)` })).status, 204);
    assert.equal((await put('/x2/f.txt', 'v4', { if: `</x2/f.txt> (<${token}>)` })).status, 204, 'Resource-Tag as an absolute path');
    assert.equal(await readFile(join(gw.upstreamDir, 'x2/f.txt'), 'utf8'), 'v4');
    const pp = await raw(url, 'PROPPATCH', '/x2/f.txt', { ...XML_HEADERS, if: `<${abs}> (<${token}>)` },
      propertyupdate('<D:set><D:prop><Z:owner-wrote>yes</Z:owner-wrote></D:prop></D:set>', ' xmlns:Z="urn:z"'));
    assert.equal(pp.status, 207);
    assert.equal(only(pp.text).get('{urn:z}owner-wrote')?.status, 200);
    // The token with a wrong entity tag in the same list: the list is false → 412.
    assert.equal((await put('/x2/f.txt', 'v5', { if: `(<${token}> ["no-such-etag"])` })).status, 412);
    assert.equal((await raw(url, 'MOVE', '/x2/f.txt', { destination: '/x2/g.txt', if: `(<${token}>)` })).status, 201);
    assert.equal(await readFile(join(gw.upstreamDir, 'x2/g.txt'), 'utf8'), 'v4');
    // RFC 4918 §7.5: the lock does not move with the resource.
    assert.equal((await put('/x2/g.txt', 'free')).status, 204);
  });

  test('a depth-infinity lock on a collection blocks changes inside it; the owner passes with the token', async () => {
    assert.equal((await raw(url, 'MKCOL', '/c1')).status, 201);
    assert.equal((await raw(url, 'MKCOL', '/c1/sub')).status, 201);
    assert.equal((await put('/c1/member.txt', 'm')).status, 201);
    assert.equal((await put('/outside.txt', 'o')).status, 201);
    const token = await lockOk(url, '/c1', { depth: 'infinity' });

    const attempts: Array<[string, string, Record<string, string>, string?]> = [
      ['MKCOL', '/c1/newdir', {}],
      ['MKCOL', '/c1/sub/deeper', {}],
      ['PUT', '/c1/new.txt', {}, 'new'],
      ['PUT', '/c1/sub/new.txt', {}, 'new'],
      ['PUT', '/c1/member.txt', {}, 'changed'],
      ['DELETE', '/c1/member.txt', {}],
      ['MOVE', '/c1/member.txt', { destination: '/moved-out.txt' }],
      ['MOVE', '/outside.txt', { destination: '/c1/moved-in.txt' }],
      ['COPY', '/outside.txt', { destination: '/c1/copied-in.txt' }],
      ['PROPPATCH', '/c1', XML_HEADERS, propertyupdate('<D:set><D:prop><Z:x>1</Z:x></D:prop></D:set>', ' xmlns:Z="urn:z"')],
      ['PROPPATCH', '/c1/member.txt', XML_HEADERS, propertyupdate('<D:set><D:prop><Z:x>1</Z:x></D:prop></D:set>', ' xmlns:Z="urn:z"')],
      ['LOCK', '/c1/member.txt', { ...XML_HEADERS, depth: '0' }, lockBody('exclusive', 'mallory')],
    ];
    for (const [method, path, headers, body] of attempts) {
      const res = await raw(url, method, path, headers, body);
      assert.equal(res.status, 423, `${method} ${path} without the token → ${res.status} ${res.text.slice(0, 200)}`);
    }
    assert.ok(!existsSync(join(gw.upstreamDir, 'c1/newdir')));
    assert.ok(!existsSync(join(gw.upstreamDir, 'c1/new.txt')));
    assert.ok(!existsSync(join(gw.upstreamDir, 'c1/moved-in.txt')));
    assert.equal(await readFile(join(gw.upstreamDir, 'c1/member.txt'), 'utf8'), 'm');

    const ifh = { if: `(<${token}>)` };
    const tagged = { if: `<${new URL('/c1/', url).href}> (<${token}>)` };
    assert.equal((await raw(url, 'MKCOL', '/c1/newdir', ifh)).status, 201);
    assert.equal((await raw(url, 'MKCOL', '/c1/sub/deeper', tagged)).status, 201, 'tagged If naming the lock root');
    assert.equal((await put('/c1/new.txt', 'new', ifh)).status, 201);
    assert.equal((await put('/c1/sub/new.txt', 'new', tagged)).status, 201);
    assert.equal((await put('/c1/member.txt', 'changed', ifh)).status, 204);
    const pp = await raw(url, 'PROPPATCH', '/c1/member.txt', { ...XML_HEADERS, ...ifh }, propertyupdate('<D:set><D:prop><Z:x>1</Z:x></D:prop></D:set>', ' xmlns:Z="urn:z"'));
    assert.equal(pp.status, 207);
    // The untagged If applies to the Request-URI (the unlocked source); the locked destination is
    // named with a tagged list (RFC 4918 §10.4.3).
    assert.equal((await raw(url, 'MOVE', '/outside.txt', { destination: '/c1/moved-in.txt', ...tagged })).status, 201);
    assert.equal((await raw(url, 'DELETE', '/c1/new.txt', ifh)).status, 204);
    assert.equal(await readFile(join(gw.upstreamDir, 'c1/member.txt'), 'utf8'), 'changed');
    assert.ok(existsSync(join(gw.upstreamDir, 'c1/newdir')));
    assert.ok(existsSync(join(gw.upstreamDir, 'c1/sub/deeper')));
    assert.ok(existsSync(join(gw.upstreamDir, 'c1/moved-in.txt')));

    // UNLOCK through a member the lock covers (RFC 4918 §9.11: the Request-URI must be in the lock's scope).
    assert.equal((await raw(url, 'UNLOCK', '/c1/sub/new.txt', { 'lock-token': `<${token}>` })).status, 204);
    assert.equal((await raw(url, 'MKCOL', '/c1/after-unlock')).status, 201);
  });

  // RFC 4918 §7.5: "A depth-0 write lock on a collection protects the collection properties plus
  // the internal member URLs of that collection, while not protecting the content or properties
  // of member resources." Adding or removing a member changes the collection's membership.
  test('a depth-0 lock on a collection protects its membership, not its members\' content', async () => {
    assert.equal((await raw(url, 'MKCOL', '/d0')).status, 201);
    for (const n of ['member.txt', 'to-move-out.txt', 'to-delete.txt']) assert.equal((await put(`/d0/${n}`, 'm')).status, 201);
    for (const n of ['d0-move-in.txt', 'd0-copy-in.txt']) assert.equal((await put(`/${n}`, 'o')).status, 201);
    const token = await lockOk(url, '/d0', { depth: '0' });
    // Not protected: the member's content and properties.
    assert.equal((await put('/d0/member.txt', 'changed by anyone')).status, 204);
    const pp = await raw(url, 'PROPPATCH', '/d0/member.txt', XML_HEADERS, propertyupdate('<D:set><D:prop><Z:x>1</Z:x></D:prop></D:set>', ' xmlns:Z="urn:z"'));
    assert.equal(only(pp.text).get('{urn:z}x')?.status, 200);
    // Protected: the collection's own properties and its set of members.
    const attempts: Array<[string, string, Record<string, string>, string?]> = [
      ['PROPPATCH', '/d0', XML_HEADERS, propertyupdate('<D:set><D:prop><Z:x>1</Z:x></D:prop></D:set>', ' xmlns:Z="urn:z"')],
      ['PUT', '/d0/new.txt', {}, 'new member'],
      ['MKCOL', '/d0/newdir', {}],
      ['DELETE', '/d0/to-delete.txt', {}],
      ['MOVE', '/d0/to-move-out.txt', { destination: '/d0-moved-out.txt' }],
      ['MOVE', '/d0-move-in.txt', { destination: '/d0/moved-in.txt' }],
      ['COPY', '/d0-copy-in.txt', { destination: '/d0/copied-in.txt' }],
    ];
    const wrong: string[] = [];
    for (const [method, path, headers, body] of attempts) {
      const res = await raw(url, method, path, headers, body);
      if (res.status !== 423) wrong.push(`${method} ${path} → ${res.status}`);
    }
    const left = ['new.txt', 'newdir', 'moved-in.txt', 'copied-in.txt'].filter((n) => existsSync(join(gw.upstreamDir, 'd0', n)));
    const gone = ['to-delete.txt', 'to-move-out.txt'].filter((n) => !existsSync(join(gw.upstreamDir, 'd0', n)));
    const del = await raw(url, 'DELETE', '/d0');
    if (del.status !== 423) wrong.push(`DELETE /d0 → ${del.status}`);
    // The member is not in the scope of a depth-0 lock: UNLOCK through it is refused.
    assert.equal((await raw(url, 'UNLOCK', '/d0/member.txt', { 'lock-token': `<${token}>` })).status, 409);
    assert.equal((await raw(url, 'UNLOCK', '/d0', { 'lock-token': `<${token}>` })).status, 204);
    assert.deepEqual(wrong, [], `changes to the membership of a depth-0-locked collection without its token: ${wrong.join('; ')}; created: ${left.join(', ')}; removed: ${gone.join(', ')}`);
  });

  test('LOCK without a Depth header locks the whole tree (depth infinity)', async () => {
    assert.equal((await raw(url, 'MKCOL', '/c2')).status, 201);
    const res = await lock(url, '/c2');
    assert.equal(res.status, 200);
    const doc = parseDoc(res.text);
    const active = descendants(doc, DAV, 'activelock');
    assert.equal(active.length, 1);
    assert.equal(textOf(kid(active[0]!, DAV, 'depth')).trim().toLowerCase(), 'infinity');
    assert.equal((await put('/c2/deep.txt', 'x')).status, 423);
    assert.equal((await raw(url, 'UNLOCK', '/c2', { 'lock-token': `<${res.token}>` })).status, 204);
  });

  test('two shared locks coexist, an exclusive one is refused, and either holder may write', async () => {
    assert.equal((await put('/shared.txt', 's')).status, 201);
    const a = await lockOk(url, '/shared.txt', { scope: 'shared', depth: '0', owner: 'alice' });
    const b = await lockOk(url, '/shared.txt', { scope: 'shared', depth: '0', owner: 'bob' });
    assert.notEqual(a, b);
    const pf = await raw(url, 'PROPFIND', '/shared.txt', { depth: '0', ...XML_HEADERS }, propfindBody('<D:lockdiscovery/>'));
    const locks = descendants(only(pf.text).get('{DAV:}lockdiscovery')!.el, DAV, 'activelock');
    assert.equal(locks.length, 2);
    for (const l of locks) assert.ok(kid(kid(l, DAV, 'lockscope')!, DAV, 'shared'), 'lockscope is not DAV:shared');
    assert.deepEqual(locks.map((l) => textOf(kid(kid(l, DAV, 'locktoken')!, DAV, 'href')).trim()).sort(), [a, b].sort());

    assert.equal((await lock(url, '/shared.txt', { scope: 'exclusive', depth: '0' })).status, 423);
    assert.equal((await put('/shared.txt', 'nobody')).status, 423);
    assert.equal((await put('/shared.txt', 'by bob', { if: `(<${b}>)` })).status, 204);
    assert.equal((await raw(url, 'UNLOCK', '/shared.txt', { 'lock-token': `<${a}>` })).status, 204);
    assert.equal((await lock(url, '/shared.txt', { scope: 'exclusive', depth: '0' })).status, 423, 'bob still holds a shared lock');
    assert.equal((await raw(url, 'UNLOCK', '/shared.txt', { 'lock-token': `<${b}>` })).status, 204);
    const ex = await lockOk(url, '/shared.txt', { scope: 'exclusive', depth: '0' });
    assert.equal((await raw(url, 'UNLOCK', '/shared.txt', { 'lock-token': ex })).status, 204);
  });

  test('a lock is refreshed by LOCK without a body and an If header, also through a member of a depth-infinity lock', async () => {
    assert.equal((await raw(url, 'MKCOL', '/r1')).status, 201);
    assert.equal((await put('/r1/member.txt', 'm')).status, 201);
    const token = await lockOk(url, '/r1', { depth: 'infinity', timeout: 'Second-60' });

    const refresh = await raw(url, 'LOCK', '/r1/member.txt', { if: `(<${token}>)`, timeout: 'Second-600' });
    assert.equal(refresh.status, 200, refresh.text);
    const active = descendants(parseDoc(refresh.text), DAV, 'activelock');
    assert.equal(active.length, 1);
    const al = active[0]!;
    assert.equal(textOf(kid(kid(al, DAV, 'locktoken')!, DAV, 'href')).trim(), token, 'refresh answered another lock');
    const secs = Number(/^Second-(\d+)$/i.exec(textOf(kid(al, DAV, 'timeout')).trim())?.[1]);
    assert.ok(secs > 60 && secs <= 600, `timeout after refresh: ${textOf(kid(al, DAV, 'timeout'))}`);
    const root = textOf(kid(kid(al, DAV, 'lockroot')!, DAV, 'href')).trim();
    assert.match(root, /\/r1\/?$/, `lockroot ${root}`);

    // Refreshing with a token that covers nothing, or with none at all, fails.
    assert.equal((await raw(url, 'LOCK', '/r1/member.txt', { if: '(<urn:uuid:11111111-2222-3333-4444-555555555555>)' })).status, 412);
    assert.equal((await raw(url, 'LOCK', '/r1/member.txt', {})).status, 400);
    assert.equal((await raw(url, 'UNLOCK', '/r1', { 'lock-token': `<${token}>` })).status, 204);
  });

  test('UNLOCK takes the token with or without angle brackets; an unknown token is 409', async () => {
    assert.equal((await put('/u1.txt', 'u')).status, 201);
    const t1 = await lockOk(url, '/u1.txt');
    assert.equal((await raw(url, 'UNLOCK', '/u1.txt', { 'lock-token': `<${t1}>` })).status, 204);
    const t2 = await lockOk(url, '/u1.txt');
    assert.equal((await raw(url, 'UNLOCK', '/u1.txt', { 'lock-token': t2 })).status, 204);
    assert.equal((await put('/u1.txt', 'free again')).status, 204);

    const unknown = await raw(url, 'UNLOCK', '/u1.txt', { 'lock-token': '<urn:uuid:99999999-9999-9999-9999-999999999999>' });
    assert.equal(unknown.status, 409);
    assert.match(unknown.text, /lock-token-matches-request-uri/);
    // The same token again after it was released.
    assert.equal((await raw(url, 'UNLOCK', '/u1.txt', { 'lock-token': `<${t1}>` })).status, 409);
    // A real token, but on a resource outside the lock's scope.
    const t3 = await lockOk(url, '/u1.txt');
    assert.equal((await put('/u2.txt', 'u2')).status, 201);
    assert.equal((await raw(url, 'UNLOCK', '/u2.txt', { 'lock-token': `<${t3}>` })).status, 409);
    assert.equal((await raw(url, 'UNLOCK', '/u1.txt', { 'lock-token': `<${t3}>` })).status, 204);
  });

  test('LOCK on an unmapped URL creates an empty file (201) which the holder then fills with PUT', async () => {
    const res = await lock(url, '/fresh.txt', { depth: '0' });
    assert.equal(res.status, 201, res.text);
    const st = await stat(join(gw.upstreamDir, 'fresh.txt'));
    assert.ok(st.isFile());
    assert.equal(st.size, 0);
    const pf = await raw(url, 'PROPFIND', '/fresh.txt', { depth: '0', ...XML_HEADERS }, propfindBody('<D:getcontentlength/><D:lockdiscovery/>'));
    assert.equal(pf.status, 207);
    const props = only(pf.text);
    assert.equal(textOf(props.get('{DAV:}getcontentlength')?.el), '0');
    assert.equal(descendants(props.get('{DAV:}lockdiscovery')!.el, DAV, 'activelock').length, 1);

    assert.equal((await put('/fresh.txt', 'stranger')).status, 423);
    assert.ok([200, 201, 204].includes((await put('/fresh.txt', 'filled by the holder', { if: `(<${res.token}>)` })).status));
    assert.equal(await readFile(join(gw.upstreamDir, 'fresh.txt'), 'utf8'), 'filled by the holder');
    assert.equal((await raw(url, 'GET', '/fresh.txt')).text, 'filled by the holder');
    assert.equal((await raw(url, 'UNLOCK', '/fresh.txt', { 'lock-token': `<${res.token}>` })).status, 204);

    // No parent: 409, and nothing is created.
    assert.equal((await lock(url, '/no-such-dir/fresh.txt')).status, 409);
    assert.ok(!existsSync(join(gw.upstreamDir, 'no-such-dir')));
  });

  test('lockdiscovery shows the lock with DAV: scope, type, depth, owner, token, root and timeout', async () => {
    assert.equal((await raw(url, 'MKCOL', '/ld')).status, 201);
    assert.equal((await put('/ld/doc.txt', 'd')).status, 201);
    const token = await lockOk(url, '/ld', { depth: 'infinity', timeout: 'Second-300', owner: 'http://example.org/~carol' });

    for (const path of ['/ld', '/ld/doc.txt']) {
      const pf = await raw(url, 'PROPFIND', path, { depth: '0', ...XML_HEADERS }, propfindBody('<D:lockdiscovery/><D:supportedlock/>'));
      assert.equal(pf.status, 207);
      const props = only(pf.text);
      const ld = props.get('{DAV:}lockdiscovery');
      assert.equal(ld?.status, 200, `lockdiscovery of ${path}`);
      const active = kids(ld.el, DAV, 'activelock');
      assert.equal(active.length, 1, `${path}: ${pf.text}`);
      const al = active[0]!;
      assert.ok(kid(kid(al, DAV, 'lockscope')!, DAV, 'exclusive'), 'DAV:lockscope/DAV:exclusive');
      assert.ok(kid(kid(al, DAV, 'locktype')!, DAV, 'write'), 'DAV:locktype/DAV:write');
      assert.equal(textOf(kid(al, DAV, 'depth')).trim().toLowerCase(), 'infinity');
      assert.equal(textOf(kid(kid(al, DAV, 'locktoken')!, DAV, 'href')).trim(), token);
      const owner = kid(al, DAV, 'owner');
      assert.ok(owner, 'DAV:owner');
      assert.equal(textOf(kid(owner, DAV, 'href')).trim(), 'http://example.org/~carol', 'owner keeps its DAV:href child');
      assert.match(textOf(kid(kid(al, DAV, 'lockroot')!, DAV, 'href')).trim(), /\/ld\/?$/);
      const secs = Number(/^Second-(\d+)$/i.exec(textOf(kid(al, DAV, 'timeout')).trim())?.[1]);
      assert.ok(secs > 250 && secs <= 300, `timeout ${textOf(kid(al, DAV, 'timeout'))}`);
      const entries = kids(props.get('{DAV:}supportedlock')!.el, DAV, 'lockentry');
      assert.ok(entries.some((e) => kid(kid(e, DAV, 'lockscope')!, DAV, 'exclusive')));
      assert.ok(entries.some((e) => kid(kid(e, DAV, 'lockscope')!, DAV, 'shared')));
    }
    // The LOCK response itself carries the same activelock.
    assert.equal((await raw(url, 'UNLOCK', '/ld', { 'lock-token': `<${token}>` })).status, 204);
    const after = await raw(url, 'PROPFIND', '/ld/doc.txt', { depth: '0', ...XML_HEADERS }, propfindBody('<D:lockdiscovery/>'));
    assert.equal(kids(only(after.text).get('{DAV:}lockdiscovery')!.el, DAV, 'activelock').length, 0);
  });
});

describe('lock timeouts (webdav.maxLockTimeout 1s)', () => {
  let gw: TestGateway;
  let url: string;

  before(async () => {
    gw = await startGateway({ cache: { ttl: 60_000 }, webdav: { maxLockTimeout: '1s' } });
    url = gw.url;
  });
  after(async () => { await gw?.close(); });

  test('a timed-out lock blocks until it expires, then no longer', async () => {
    assert.equal((await raw(url, 'PUT', '/t.txt', {}, 'v1')).status, 201);
    assert.equal((await raw(url, 'MKCOL', '/tc')).status, 201);
    const fileLock = await lockOk(url, '/t.txt', { depth: '0', timeout: 'Second-1' });
    await lockOk(url, '/tc', { depth: 'infinity', timeout: 'Second-1' });
    const pf = await raw(url, 'PROPFIND', '/t.txt', { depth: '0', ...XML_HEADERS }, propfindBody('<D:lockdiscovery/>'));
    const timeout = textOf(descendants(parseDoc(pf.text), DAV, 'timeout')[0]).trim();
    assert.match(timeout, /^Second-[01]$/, `timeout ${timeout}`);

    assert.equal((await raw(url, 'PUT', '/t.txt', {}, 'v2')).status, 423);
    assert.equal((await raw(url, 'DELETE', '/t.txt')).status, 423);
    assert.equal((await raw(url, 'MKCOL', '/tc/inside')).status, 423);
    await sleep(1300);
    assert.equal((await raw(url, 'PUT', '/t.txt', {}, 'v2')).status, 204);
    assert.equal((await raw(url, 'MKCOL', '/tc/inside')).status, 201);
    const pf2 = await raw(url, 'PROPFIND', '/t.txt', { depth: '0', ...XML_HEADERS }, propfindBody('<D:lockdiscovery/>'));
    assert.equal(descendants(parseDoc(pf2.text), DAV, 'activelock').length, 0, 'expired lock still listed');
    // The expired token is gone: UNLOCK and refresh fail.
    assert.equal((await raw(url, 'UNLOCK', '/t.txt', { 'lock-token': `<${fileLock}>` })).status, 409);
    assert.equal((await raw(url, 'LOCK', '/t.txt', { if: `(<${fileLock}>)` })).status, 412);
  });

  test('longer or infinite timeouts asked for are capped at maxLockTimeout', async () => {
    assert.equal((await raw(url, 'PUT', '/cap.txt', {}, 'c')).status, 201);
    for (const asked of ['Second-3600', 'Infinite', 'Infinite, Second-4100000000']) {
      const res = await lock(url, '/cap.txt', { depth: '0', timeout: asked });
      assert.equal(res.status, 200, `${asked}: ${res.text}`);
      const timeout = textOf(descendants(parseDoc(res.text), DAV, 'timeout')[0]).trim();
      assert.match(timeout, /^Second-[01]$/, `${asked} → ${timeout}`);
      assert.equal((await raw(url, 'UNLOCK', '/cap.txt', { 'lock-token': `<${res.token}>` })).status, 204);
    }
    await lockOk(url, '/cap.txt', { depth: '0', timeout: 'Infinite' });
    await sleep(1300);
    assert.equal((await raw(url, 'PUT', '/cap.txt', {}, 'free')).status, 204, 'an "Infinite" lock outlived maxLockTimeout');
  });
});

describe('locks and dead properties survive a restart (cache.nodeTable sqlite)', () => {
  let upstreamDir: string;
  let cacheDir: string;
  let gw: TestGateway | undefined;

  before(async () => {
    upstreamDir = await mkdtemp(join(tmpdir(), 'davgate-up-restart-'));
    cacheDir = await mkdtemp(join(tmpdir(), 'davgate-cache-restart-'));
  });
  after(async () => {
    await gw?.close();
    await rm(upstreamDir, { recursive: true, force: true });
    await rm(cacheDir, { recursive: true, force: true });
  });

  test('lockdiscovery and a dead property are there after stop and start on the same directories', async () => {
    const overrides = { cache: { nodeTable: 'sqlite', ttl: 100 } };
    gw = await startGateway(overrides, { upstreamDir, cacheDir });
    let url = gw.url;
    assert.equal((await raw(url, 'MKCOL', '/keep')).status, 201);
    assert.equal((await raw(url, 'PUT', '/keep/a.txt', {}, 'a')).status, 201);
    const pp = await raw(url, 'PROPPATCH', '/keep/a.txt', XML_HEADERS,
      propertyupdate('<D:set><D:prop><Z:color>blue <Y:shade xmlns:Y="urn:y" level="2">dark</Y:shade></Z:color></D:prop></D:set>', ' xmlns:Z="urn:z"'));
    assert.equal(pp.status, 207);
    assert.equal(only(pp.text).get('{urn:z}color')?.status, 200);
    assert.equal((await raw(url, 'MKCOL', '/keep2')).status, 201);
    const fileToken = await lockOk(url, '/keep/a.txt', { depth: '0', timeout: 'Second-3600' });
    const dirToken = await lockOk(url, '/keep2', { scope: 'shared', depth: 'infinity', timeout: 'Second-3600' });
    await gw.close();
    gw = undefined;

    gw = await startGateway(overrides, { upstreamDir, cacheDir });
    url = gw.url;
    const pf = await raw(url, 'PROPFIND', '/keep/a.txt', { depth: '0', ...XML_HEADERS }, propfindBody('<D:lockdiscovery/><Z:color/>', ' xmlns:Z="urn:z"'));
    assert.equal(pf.status, 207);
    const props = only(pf.text);
    const color = props.get('{urn:z}color');
    assert.equal(color?.status, 200, `dead property lost over the restart: ${pf.text}`);
    assert.equal(canon(color.el.nodes), canon(parseDoc('<r xmlns:Y="urn:y">blue <Y:shade level="2">dark</Y:shade></r>').nodes));
    const tokens = descendants(props.get('{DAV:}lockdiscovery')!.el, DAV, 'locktoken').map((t) => textOf(kid(t, DAV, 'href')).trim());
    assert.deepEqual(tokens, [fileToken], `file lock lost over the restart: ${pf.text}`);
    const pf2 = await raw(url, 'PROPFIND', '/keep2', { depth: '0', ...XML_HEADERS }, propfindBody('<D:lockdiscovery/>'));
    const dirLock = descendants(only(pf2.text).get('{DAV:}lockdiscovery')!.el, DAV, 'activelock');
    assert.equal(dirLock.length, 1, `collection lock lost over the restart: ${pf2.text}`);
    assert.equal(textOf(kid(kid(dirLock[0]!, DAV, 'locktoken')!, DAV, 'href')).trim(), dirToken);
    assert.ok(kid(kid(dirLock[0]!, DAV, 'lockscope')!, DAV, 'shared'));
    assert.equal(textOf(kid(dirLock[0]!, DAV, 'depth')).trim().toLowerCase(), 'infinity');
    const secs = [...descendants(parseDoc(pf.text), DAV, 'timeout'), ...descendants(parseDoc(pf2.text), DAV, 'timeout')]
      .map((t) => Number(/(\d+)$/.exec(textOf(t).trim())?.[1]));
    assert.equal(secs.length, 2);
    for (const s of secs) assert.ok(s > 3000 && s <= 3600, `timeout after restart ${s}`);

    // And they still work as locks.
    assert.equal((await raw(url, 'PUT', '/keep/a.txt', {}, 'intruder')).status, 423);
    assert.equal((await raw(url, 'PUT', '/keep2/b.txt', {}, 'intruder')).status, 423);
    assert.equal((await raw(url, 'PUT', '/keep/a.txt', { if: `(<${fileToken}>)` }, 'owner')).status, 204);
    assert.equal((await raw(url, 'UNLOCK', '/keep/a.txt', { 'lock-token': `<${fileToken}>` })).status, 204);
    assert.equal((await raw(url, 'UNLOCK', '/keep2', { 'lock-token': `<${dirToken}>` })).status, 204);
    assert.equal((await raw(url, 'PUT', '/keep2/b.txt', {}, 'b')).status, 201);
    assert.equal((await raw(url, 'PUT', '/keep/a.txt', {}, 'free')).status, 204);
  });
});

describe('dead properties', () => {
  let gw: TestGateway;
  let url: string;

  before(async () => {
    gw = await startGateway({ cache: { ttl: 60_000 } });
    url = gw.url;
  });
  after(async () => { await gw?.close(); });

  const put = (path: string, body: string) => raw(url, 'PUT', path, {}, body);
  const proppatch = (path: string, inner: string, decls = '') => raw(url, 'PROPPATCH', path, XML_HEADERS, propertyupdate(inner, decls));
  async function propfindOne(path: string, props: string, decls = ''): Promise<Map<string, PropResult>> {
    const res = await raw(url, 'PROPFIND', path, { depth: '0', ...XML_HEADERS }, propfindBody(props, decls));
    assert.equal(res.status, 207, `PROPFIND ${path} → ${res.status} ${res.text.slice(0, 200)}`);
    return only(res.text);
  }

  // Property values with nested elements in their own namespaces, attributes (plain, namespaced,
  // with quotes and ampersands), mixed text and escaped characters, a default namespace inside a
  // value, an element in no namespace, and namespace URIs that need escaping.
  const DECLS = ' xmlns:A="http://example.com/ns/a" xmlns:B="urn:example:b&amp;c"';
  const VALUES = [
    '<A:author>Ann <B:em xmlns:C="http://example.com/ns/c" C:style="bold" plain="x &quot;q&quot; &amp; y">Smith</B:em> &amp; co &lt;3 &gt;</A:author>',
    '<A:tags><A:tag n="1">one</A:tag><A:tag n="2"/><C2:tag xmlns:C2="http://example.com/ns/c">other</C2:tag></A:tags>',
    '<B:flag/>',
    '<B:deep><B:l1><B:l2 xmlns="http://example.com/ns/default"><l3>in the default namespace</l3><bare xmlns="">no namespace</bare></B:l2></B:l1></B:deep>',
    '<plain xmlns="">no namespace <child attr="v">text</child> tail</plain>',
    '<A:unicode>Grüße — 日本語 — 🙂</A:unicode>',
  ];
  const NAMES: Array<[string, string]> = [
    ['http://example.com/ns/a', 'author'], ['http://example.com/ns/a', 'tags'], ['urn:example:b&c', 'flag'],
    ['urn:example:b&c', 'deep'], ['', 'plain'], ['http://example.com/ns/a', 'unicode'],
  ];

  test('PROPPATCH in several namespaces (and none) with XML values; PROPFIND gives back the same namespaces and content', async () => {
    assert.equal((await put('/props.txt', 'p')).status, 201);
    const body = propertyupdate(`<D:set><D:prop>${VALUES.join('\n')}</D:prop></D:set>`, DECLS);
    const pp = await raw(url, 'PROPPATCH', '/props.txt', XML_HEADERS, body);
    assert.equal(pp.status, 207, pp.text);
    const ppProps = only(pp.text);
    for (const [ns, local] of NAMES) assert.equal(ppProps.get(`{${ns}}${local}`)?.status, 200, `PROPPATCH result for {${ns}}${local}: ${pp.text}`);

    // What was sent, parsed the same way, per property.
    const sent = new Map<string, El>();
    const reqDoc = parseDoc(body);
    for (const el of kid(kid(reqDoc, DAV, 'set')!, DAV, 'prop')!.children) sent.set(`{${el.ns}}${el.local}`, el);

    // By name...
    const byName = await propfindOne('/props.txt', '<A:author/><A:tags/><B:flag/><B:deep/><plain xmlns=""/><A:unicode/><A:missing/>', DECLS);
    // ... and in allprop.
    const all = await raw(url, 'PROPFIND', '/props.txt', { depth: '0' });
    assert.equal(all.status, 207);
    const allProps = only(all.text);
    for (const [ns, local] of NAMES) {
      const key = `{${ns}}${local}`;
      for (const [how, props] of [['by name', byName], ['allprop', allProps]] as const) {
        const got = props.get(key);
        assert.equal(got?.status, 200, `${how}: ${key} missing`);
        assert.equal(canon(got.el.nodes), canon(sent.get(key)!.nodes), `${how}: ${key} came back different`);
      }
    }
    assert.equal(byName.get('{http://example.com/ns/a}missing')?.status, 404);

    // propname lists the names without values.
    const names = await raw(url, 'PROPFIND', '/props.txt', { depth: '0', ...XML_HEADERS },
      '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>');
    const nameProps = only(names.text);
    for (const [ns, local] of NAMES) {
      const got = nameProps.get(`{${ns}}${local}`);
      assert.ok(got, `propname lacks {${ns}}${local}`);
      assert.equal(got.el.nodes.length, 0, `propname gave a value for {${ns}}${local}`);
    }
  });

  // RFC 4918 §4.3: the xml:lang in scope of a property element is part of what must be kept.
  test('xml:lang on a property element is preserved (RFC 4918 §4.3)', async () => {
    assert.equal((await put('/lang.txt', 'l')).status, 201);
    const pp = await proppatch('/lang.txt', '<D:set><D:prop><A:title xml:lang="fr">Bonjour</A:title></D:prop></D:set><D:set xml:lang="de"><D:prop><A:greeting>Hallo</A:greeting></D:prop></D:set>', DECLS);
    assert.equal(pp.status, 207);
    const props = await propfindOne('/lang.txt', '<A:title/><A:greeting/>', DECLS);
    const langOf = (el: El | undefined): string | undefined => {
      for (let e = el; e; e = e.parent) {
        const a = e.attrs.find((x) => x.ns === XML_NS && x.local === 'lang');
        if (a) return a.value;
      }
      return undefined;
    };
    assert.equal(textOf(props.get('{http://example.com/ns/a}title')?.el), 'Bonjour');
    assert.equal(langOf(props.get('{http://example.com/ns/a}title')?.el), 'fr', 'xml:lang of the property element was lost');
    assert.equal(langOf(props.get('{http://example.com/ns/a}greeting')?.el), 'de', 'xml:lang in scope (on DAV:set) was lost');
  });

  test('instructions apply in document order: remove then set leaves the value, set then remove leaves nothing', async () => {
    assert.equal((await put('/order.txt', 'o')).status, 201);
    let pp = await proppatch('/order.txt', '<D:remove><D:prop><A:x/></D:prop></D:remove><D:set><D:prop><A:x>v1</A:x></D:prop></D:set>', DECLS);
    assert.equal(pp.status, 207);
    assert.equal(textOf((await propfindOne('/order.txt', '<A:x/>', DECLS)).get('{http://example.com/ns/a}x')?.el), 'v1');

    pp = await proppatch('/order.txt', '<D:set><D:prop><A:x>v2</A:x></D:prop></D:set><D:remove><D:prop><A:x/></D:prop></D:remove>', DECLS);
    assert.equal(pp.status, 207);
    assert.equal((await propfindOne('/order.txt', '<A:x/>', DECLS)).get('{http://example.com/ns/a}x')?.status, 404);

    // Two sets of one name in one request: the last wins.
    pp = await proppatch('/order.txt', '<D:set><D:prop><A:x>first</A:x></D:prop></D:set><D:set><D:prop><A:x>second</A:x></D:prop></D:set>', DECLS);
    assert.equal(pp.status, 207);
    assert.equal(textOf((await propfindOne('/order.txt', '<A:x/>', DECLS)).get('{http://example.com/ns/a}x')?.el), 'second');
    // Removing a property that does not exist is a success (RFC 4918 §14.23).
    pp = await proppatch('/order.txt', '<D:remove><D:prop><A:never-set/></D:prop></D:remove>', DECLS);
    assert.equal(pp.status, 207);
    assert.equal(only(pp.text).get('{http://example.com/ns/a}never-set')?.status, 200);
  });

  test('all or nothing: a protected property in the request fails it with 403 and the rest with 424, nothing stored', async () => {
    assert.equal((await put('/atomic.txt', 'a')).status, 201);
    assert.equal((await proppatch('/atomic.txt', '<D:set><D:prop><A:existing>old</A:existing></D:prop></D:set>', DECLS)).status, 207);

    const pp = await proppatch('/atomic.txt',
      '<D:set><D:prop><A:newprop>n</A:newprop><D:getetag>"forged"</D:getetag></D:prop></D:set><D:remove><D:prop><A:existing/></D:prop></D:remove>', DECLS);
    assert.equal(pp.status, 207, pp.text);
    const res = only(pp.text);
    const etag = res.get('{DAV:}getetag');
    assert.equal(etag?.status, 403);
    const err = kid(etag.propstat, DAV, 'error');
    assert.ok(err && kid(err, DAV, 'cannot-modify-protected-property'), `no DAV:cannot-modify-protected-property in the 403 propstat: ${pp.text}`);
    assert.equal(res.get('{http://example.com/ns/a}newprop')?.status, 424);
    assert.equal(res.get('{http://example.com/ns/a}existing')?.status, 424);

    const after = await propfindOne('/atomic.txt', '<A:newprop/><A:existing/>', DECLS);
    assert.equal(after.get('{http://example.com/ns/a}newprop')?.status, 404, 'a property of a failed PROPPATCH was stored');
    assert.equal(textOf(after.get('{http://example.com/ns/a}existing')?.el), 'old', 'a remove of a failed PROPPATCH was applied');

    // Every live property is protected, the quota ones included.
    for (const name of ['getcontentlength', 'resourcetype', 'lockdiscovery', 'quota-used-bytes']) {
      const r = await proppatch('/atomic.txt', `<D:set><D:prop><D:${name}>1</D:${name}></D:prop></D:set>`);
      assert.equal(only(r.text).get(`{DAV:}${name}`)?.status, 403, `PROPPATCH DAV:${name}`);
    }
  });

  test('dead properties follow MOVE, are copied by COPY, and go with DELETE', async () => {
    assert.equal((await raw(url, 'MKCOL', '/pm')).status, 201);
    assert.equal((await put('/pm/src.txt', 's')).status, 201);
    assert.equal((await proppatch('/pm/src.txt', '<D:set><D:prop><A:m>moved along</A:m></D:prop></D:set>', DECLS)).status, 207);
    const value = async (path: string) => {
      const p = (await propfindOne(path, '<A:m/>', DECLS)).get('{http://example.com/ns/a}m');
      return p?.status === 200 ? textOf(p.el) : undefined;
    };

    assert.equal((await raw(url, 'COPY', '/pm/src.txt', { destination: '/pm/copy.txt' })).status, 201);
    assert.equal(await value('/pm/src.txt'), 'moved along');
    assert.equal(await value('/pm/copy.txt'), 'moved along');

    // COPY over an existing resource replaces its dead properties.
    assert.equal((await put('/pm/target.txt', 't')).status, 201);
    assert.equal((await proppatch('/pm/target.txt', '<D:set><D:prop><A:only-target>t</A:only-target></D:prop></D:set>', DECLS)).status, 207);
    assert.equal((await raw(url, 'COPY', '/pm/src.txt', { destination: '/pm/target.txt', overwrite: 'T' })).status, 204);
    const target = await propfindOne('/pm/target.txt', '<A:m/><A:only-target/>', DECLS);
    assert.equal(textOf(target.get('{http://example.com/ns/a}m')?.el), 'moved along');
    assert.equal(target.get('{http://example.com/ns/a}only-target')?.status, 404);

    assert.equal((await raw(url, 'MOVE', '/pm/src.txt', { destination: '/pm/moved.txt' })).status, 201);
    assert.equal(await value('/pm/moved.txt'), 'moved along');
    assert.equal((await raw(url, 'PROPFIND', '/pm/src.txt', { depth: '0' })).status, 404);
    assert.equal((await put('/pm/src.txt', 'new')).status, 201);
    assert.equal(await value('/pm/src.txt'), undefined, 'a new resource at the old name inherited the moved properties');

    assert.equal((await raw(url, 'DELETE', '/pm/moved.txt')).status, 204);
    assert.equal((await put('/pm/moved.txt', 'again')).status, 201);
    assert.equal(await value('/pm/moved.txt'), undefined, 'a re-created resource has the deleted one\'s properties');

    // Collections: members' properties go along with MOVE of the parent, and with DELETE of it.
    assert.equal((await raw(url, 'MKCOL', '/pm/dir')).status, 201);
    assert.equal((await put('/pm/dir/inner.txt', 'i')).status, 201);
    assert.equal((await proppatch('/pm/dir/inner.txt', '<D:set><D:prop><A:m>inner</A:m></D:prop></D:set>', DECLS)).status, 207);
    assert.equal((await proppatch('/pm/dir', '<D:set><D:prop><A:m>dir</A:m></D:prop></D:set>', DECLS)).status, 207);
    assert.equal((await raw(url, 'MOVE', '/pm/dir', { destination: '/pm/dir2' })).status, 201);
    assert.equal(await value('/pm/dir2/inner.txt'), 'inner');
    assert.equal(await value('/pm/dir2'), 'dir');
    assert.equal((await raw(url, 'MKCOL', '/pm/dir')).status, 201);
    assert.equal((await put('/pm/dir/inner.txt', 'i')).status, 201);
    assert.equal(await value('/pm/dir/inner.txt'), undefined);
    assert.equal(await value('/pm/dir'), undefined);
    assert.equal((await raw(url, 'DELETE', '/pm/dir2')).status, 204);
    assert.equal((await raw(url, 'MKCOL', '/pm/dir2')).status, 201);
    assert.equal((await put('/pm/dir2/inner.txt', 'i')).status, 201);
    assert.equal(await value('/pm/dir2/inner.txt'), undefined);
    assert.equal(await value('/pm/dir2'), undefined);
    // A name that only shares a prefix is not "inside".
    assert.equal((await put('/pm/dir2x.txt', 'x')).status, 201);
    assert.equal((await proppatch('/pm/dir2x.txt', '<D:set><D:prop><A:m>sibling</A:m></D:prop></D:set>', DECLS)).status, 207);
    assert.equal((await raw(url, 'DELETE', '/pm/dir2')).status, 204);
    assert.equal(await value('/pm/dir2x.txt'), 'sibling');
  });

  test('PROPPATCH on a collection', async () => {
    assert.equal((await raw(url, 'MKCOL', '/pc')).status, 201);
    const pp = await proppatch('/pc/', '<D:set><D:prop><A:label>a folder</A:label></D:prop></D:set>', DECLS);
    assert.equal(pp.status, 207);
    const all = multistatus(pp.text);
    assert.equal(all.size, 1);
    assert.equal([...all.values()][0]!.get('{http://example.com/ns/a}label')?.status, 200);
    assert.equal(textOf((await propfindOne('/pc', '<A:label/>', DECLS)).get('{http://example.com/ns/a}label')?.el), 'a folder');
    // Listed on the collection's own entry of the parent's Depth 1 listing.
    const list = await raw(url, 'PROPFIND', '/', { depth: '1', ...XML_HEADERS }, propfindBody('<A:label/>', DECLS));
    const entry = [...multistatus(list.text).entries()].find(([href]) => /^\/pc\/?$/.test(href));
    assert.ok(entry, 'no /pc/ entry in the listing');
    assert.equal(textOf(entry[1].get('{http://example.com/ns/a}label')?.el), 'a folder');
    // And on the root.
    const root = await proppatch('/', '<D:set><D:prop><A:label>the root</A:label></D:prop></D:set>', DECLS);
    assert.equal(only(root.text).get('{http://example.com/ns/a}label')?.status, 200);
    assert.equal(textOf((await propfindOne('/', '<A:label/>', DECLS)).get('{http://example.com/ns/a}label')?.el), 'the root');
  });

  test('Win32LastModifiedTime sets the upstream mtime; the Win32* properties are stored', async () => {
    assert.equal((await put('/win.txt', 'from windows')).status, 201);
    const WHEN = 'Wed, 20 Jun 2007 20:29:30 GMT';
    const win32 = {
      Win32CreationTime: 'Wed, 20 Jun 2007 20:29:23 GMT',
      Win32LastAccessTime: WHEN,
      Win32LastModifiedTime: WHEN,
      Win32FileAttributes: '00000020',
    };
    const sets = Object.entries(win32).map(([k, v]) => `<Z:${k}>${v}</Z:${k}>`).join('');
    const pp = await proppatch('/win.txt', `<D:set><D:prop>${sets}</D:prop></D:set>`, ` xmlns:Z="${MS}"`);
    assert.equal(pp.status, 207, pp.text);
    const res = only(pp.text);
    for (const k of Object.keys(win32)) assert.equal(res.get(`{${MS}}${k}`)?.status, 200, `${k}: ${pp.text}`);

    const st = await stat(join(gw.upstreamDir, 'win.txt'));
    assert.equal(Math.round(st.mtimeMs / 1000), Date.parse(WHEN) / 1000, `upstream mtime ${new Date(st.mtimeMs).toUTCString()}`);
    assert.equal(await readFile(join(gw.upstreamDir, 'win.txt'), 'utf8'), 'from windows', 'setting the mtime touched the content');

    const props = await propfindOne('/win.txt', `${Object.keys(win32).map((k) => `<Z:${k}/>`).join('')}<D:getlastmodified/>`, ` xmlns:Z="${MS}"`);
    for (const [k, v] of Object.entries(win32)) assert.equal(textOf(props.get(`{${MS}}${k}`)?.el), v, k);
    assert.equal(textOf(props.get('{DAV:}getlastmodified')?.el), WHEN, 'getlastmodified does not show the new mtime');
    const get = await raw(url, 'HEAD', '/win.txt');
    assert.equal(get.headers['last-modified'], WHEN);
  });

  test('RFC 4331 quota properties: answered by name on / and on a file, absent from allprop', async () => {
    assert.equal((await put('/q.txt', 'q')).status, 201);
    for (const path of ['/', '/q.txt']) {
      const props = await propfindOne(path, '<D:quota-available-bytes/><D:quota-used-bytes/>');
      for (const name of ['quota-available-bytes', 'quota-used-bytes']) {
        const p = props.get(`{DAV:}${name}`);
        assert.equal(p?.status, 200, `${path}: DAV:${name}`);
        const text = textOf(p.el).trim();
        assert.match(text, /^\d+$/, `${path}: DAV:${name} = "${text}"`);
        assert.ok(Number(text) > 0, `${path}: DAV:${name} = ${text}`);
      }
    }
    for (const body of [undefined, '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>']) {
      const res = await raw(url, 'PROPFIND', '/', { depth: '0', ...XML_HEADERS }, body);
      assert.equal(res.status, 207);
      const props = only(res.text);
      assert.ok(!props.has('{DAV:}quota-available-bytes'), 'quota-available-bytes in allprop');
      assert.ok(!props.has('{DAV:}quota-used-bytes'), 'quota-used-bytes in allprop');
      assert.ok(props.has('{DAV:}resourcetype'), 'allprop without resourcetype');
    }
  });
});
