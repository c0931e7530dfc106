import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { parseIf, stateTokens, evaluateIf, type IfCondition, type IfHeader, type IfList, type ResourceState } from '../../src/gateway/ifheader.js';
import { BadRequestError } from '../../src/errors.js';
import { encodeHref } from '../../src/davpath.js';

const T1 = 'urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2';
const T2 = 'urn:uuid:58f202ac-22cf-11d1-b12d-002035b29092';

/** A state function over a fixed table; unknown paths do not exist. Records every call. */
function states(table: Record<string, { etag?: string; tokens?: string[] }>): { fn: (p: string) => Promise<ResourceState>; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    fn: async (p) => {
      calls.push(p);
      const e = table[p];
      return e === undefined ? { lockTokens: new Set() } : { etag: e.etag, lockTokens: new Set(e.tokens ?? []) };
    },
  };
}

async function ev(header: string, path: string, table: Record<string, { etag?: string; tokens?: string[] }>): Promise<boolean> {
  return evaluateIf(parseIf(header), path, states(table).fn);
}

// --- RFC 4918 §10.4 examples ---------------------------------------------------------------

test('RFC 4918 §10.4.6: no-tag production, two lists', async () => {
  const h = `(<${T1}> ["I am an ETag"]) (["I am another ETag"])`;
  assert.deepEqual(parseIf(h), {
    lists: [
      { conditions: [{ not: false, kind: 'token', value: T1 }, { not: false, kind: 'etag', value: '"I am an ETag"' }] },
      { conditions: [{ not: false, kind: 'etag', value: '"I am another ETag"' }] },
    ],
  });
  assert.deepEqual([...stateTokens(parseIf(h))], [T1]);
  assert.equal(await ev(h, '/r', { '/r': { etag: '"I am an ETag"', tokens: [T1] } }), true);
  assert.equal(await ev(h, '/r', { '/r': { etag: '"I am another ETag"' } }), true);
  assert.equal(await ev(h, '/r', { '/r': { etag: '"I am an ETag"' } }), false, 'first list needs the lock');
  assert.equal(await ev(h, '/r', { '/r': { etag: '"other"', tokens: [T1] } }), false);
});

test('RFC 4918 §10.4.7: Not with the no-tag production', async () => {
  const h = `(Not <${T1}> <${T2}>)`;
  assert.deepEqual(parseIf(h).lists[0]?.conditions, [{ not: true, kind: 'token', value: T1 }, { not: false, kind: 'token', value: T2 }]);
  assert.equal(await ev(h, '/r', { '/r': { tokens: [T2] } }), true);
  assert.equal(await ev(h, '/r', { '/r': { tokens: [T1, T2] } }), false);
  assert.equal(await ev(h, '/r', { '/r': {} }), false);
});

test('RFC 4918 §10.4.8: (Not <DAV:no-lock>) makes the header always true', async () => {
  const h = `(<${T1}>) (Not <DAV:no-lock>)`;
  assert.equal(await ev(h, '/r', {}), true);
  assert.equal(await ev(h, '/r', { '/r': { tokens: ['urn:other'] } }), true);
  assert.deepEqual(stateTokens(parseIf(h)), new Set([T1, 'DAV:no-lock']));
});

test('RFC 4918 §10.4.9: tagged list in COPY applies to the tagged resource, W/ etag', async () => {
  const h = `<http://www.example.com/resource1> (<${T1}> [W/"A weak ETag"]) (["strong ETag"])`;
  const parsed = parseIf(h);
  assert.deepEqual(parsed.lists.map((l) => l.resource), ['/resource1', '/resource1']);
  assert.equal(parsed.lists[0]?.conditions[1]?.value, 'W/"A weak ETag"');
  const s = states({ '/resource1': { etag: '"strong ETag"' } });
  assert.equal(await evaluateIf(parsed, '/resource2', s.fn), true);
  assert.deepEqual(s.calls, ['/resource1'], 'state looked up once, for the tagged resource only');
  assert.equal(await ev(h, '/resource2', { '/resource1': { etag: '"A weak ETag"', tokens: [T1] } }), true, 'W/ ignored in comparison');
  assert.equal(await ev(h, '/resource2', { '/resource2': { etag: '"strong ETag"' } }), false, 'the request path is not the tagged resource');
});

test('RFC 4918 §10.4.10: lock token of the collection, tag with a trailing slash', async () => {
  const h = `<http://www.example.com/specs/> (<${T1}>)`;
  assert.equal(parseIf(h).lists[0]?.resource, '/specs');
  assert.equal(await ev(h, '/specs/rfc2518.txt', { '/specs': { tokens: [T1] } }), true);
  assert.equal(await ev(h, '/specs/rfc2518.txt', { '/specs/rfc2518.txt': { tokens: [T1] } }), false);
});

test('RFC 4918 §10.4.11: etags on unmapped URLs', async () => {
  assert.equal(await ev('</specs/rfc2518.doc> (["4217"])', '/x', {}), false);
  assert.equal(await ev('</specs/rfc2518.doc> (Not ["4217"])', '/x', {}), true);
  assert.equal(await ev('</specs/rfc2518.doc> (["4217"])', '/x', { '/specs/rfc2518.doc': { etag: '"4217"' } }), true);
});

// --- litmus ------------------------------------------------------------------------------

test('litmus: conditions with DAV:no-lock and bogus tokens', async () => {
  const tok = 'opaquelocktoken:1234-real';
  const locked = { '/f': { etag: '"etag"', tokens: [tok] } };
  assert.equal(await ev('(<DAV:no-lock> ["etag"])', '/f', locked), false);
  assert.equal(await ev(`(<${tok}> ["wrong etag"]) (Not <DAV:no-lock> ["wrong etag"])`, '/f', locked), false);
  assert.equal(await ev(`(<${tok}> ["etag"])`, '/f', locked), true);
  assert.equal(await ev('(<DAV:no-lock>)', '/f', locked), false);
  assert.equal(await ev('(<DAV:no-lock>)', '/f', { '/f': { tokens: ['DAV:no-lock'] } }), false, 'no-lock never matches');
  assert.equal(await ev('(Not <DAV:no-lock>)', '/f', locked), true);
  const bogus = '(<opaquelocktoken:foobar>) (Not <DAV:no-lock>)';
  assert.equal(await ev(bogus, '/f', locked), true);
  assert.ok(stateTokens(parseIf(bogus)).has('opaquelocktoken:foobar'));
});

// --- syntax details ----------------------------------------------------------------------

test('LWS, case-insensitive Not, w/ spelled W/, escapes and brackets inside quoted strings', () => {
  const h = parseIf('\t(\tnOT<a:b>[ w/"x\\"y]" ] )\r\n (NOT\r\n ["(<>)"])  ');
  assert.deepEqual(h.lists, [
    { conditions: [{ not: true, kind: 'token', value: 'a:b' }, { not: false, kind: 'etag', value: 'W/"x\\"y]"' }] },
    { conditions: [{ not: true, kind: 'etag', value: '"(<>)"' }] },
  ]);
  assert.deepEqual(parseIf('(<a:b>)(["c"])').lists.length, 2);
});

test('resource tags: any host, query dropped, percent-decoded, trailing slash, un-canonicalisable tags', async () => {
  const resOf = (tag: string): string | undefined => parseIf(`<${tag}> (["e"])`).lists[0]?.resource;
  assert.equal(resOf('http://proxy.internal:8443/a%20b/c/'), '/a b/c');
  assert.equal(resOf('https://[::1]/x?y=1'), '/x');
  assert.equal(resOf('http://h'), '/');
  assert.equal(resOf('/a//b/'), '/a/b');
  assert.equal(resOf('/a/../b'), '', 'traversal: no resource');
  assert.equal(resOf('/a%zz'), '', 'bad percent-encoding: no resource');
  assert.equal(resOf('urn:x'), '', 'not a path on this server');
  // A list whose tag names nothing is false, not an exception; other lists still count.
  assert.equal(await ev('</a/../b> (Not ["e"])', '/b', {}), false);
  assert.equal(await ev('</a/../b> (Not ["e"]) </b> (Not ["e"])', '/b', {}), true);
  assert.equal(await ev('<urn:x> (Not <DAV:no-lock>)', '/', {}), false);
});

test('state is looked up once per path and evaluation stops at the first true list', async () => {
  const s = states({ '/a': { etag: '"1"' } });
  assert.equal(await evaluateIf(parseIf('</a> (["0"]) (["1"]) </a/> (["2"]) </b> (["3"])'), '/', s.fn), true);
  assert.deepEqual(s.calls, ['/a']);
  const t = states({});
  assert.equal(await evaluateIf(parseIf('</a> (["0"]) </b> (["1"]) </a> (["2"])'), '/', t.fn), false);
  assert.deepEqual(t.calls, ['/a', '/b']);
  // synchronous state functions work too
  assert.equal(await evaluateIf(parseIf('(["1"])'), '/r', () => ({ etag: '"1"', lockTokens: new Set<string>() })), true);
});

const MALFORMED: [string, string][] = [
  ['', 'empty'],
  ['   ', 'only whitespace'],
  ['garbage', 'garbage'],
  ['(', 'unclosed list'],
  ['()', 'list without a condition'],
  ['( \t )', 'list of whitespace'],
  ['(<a:b>', 'unbalanced parenthesis'],
  ['(<a:b>))', 'extra )'],
  ['(<a:b)', 'unbalanced angle bracket'],
  ['(["x")', 'unbalanced square bracket'],
  ['(["x])', 'unterminated quoted string'],
  ['([x])', 'unquoted entity tag'],
  ['([W/ "x"])', 'space inside W/"x"'],
  ['(["a\u0001b"])', 'control character in entity tag'],
  ['(Not)', 'Not without a condition'],
  ['(Not Not <a:b>)', 'Not twice'],
  ['(<>)', 'empty state token'],
  ['(<no-scheme>)', 'state token not an absolute URI'],
  ['(<a b:c>)', 'space in a state token'],
  ['<http://h/a>', 'tag without a list'],
  ['<http://h/a> <http://h/b> (<a:b>)', 'tag followed by a tag'],
  ['<http://h/a> (<a:b>) <http://h/b>', 'trailing tag without a list'],
  ['<relative/path> (<a:b>)', 'relative resource tag'],
  ['(<a:b>) <http://h/a> (<c:d>)', 'untagged then tagged'],
  ['(<a:b>), (<c:d>)', 'comma between lists'],
  ['(<a:b>)\n(<c:d>)', 'bare LF'],
  ['((<a:b>))', 'nested lists'],
  ['If: (<a:b>)', 'header name included'],
  ['(<a:b>)'.repeat(2341), 'over 16 KiB'],
  ['(' + '["x"]'.repeat(257) + ')', '257 conditions'],
];

test('malformed If headers are BadRequestError', () => {
  for (const [h, why] of MALFORMED) {
    assert.throws(() => parseIf(h), (e: unknown) => e instanceof BadRequestError && e.code === 'DAVGATE_BAD_REQUEST' && e.message.startsWith('malformed If header: '), why);
  }
  // the limits are inclusive
  assert.equal(parseIf('(' + '["x"]'.repeat(256) + ')').lists[0]?.conditions.length, 256);
  assert.equal(parseIf(('(<a:b>)' + ' '.repeat(57)).repeat(256)).lists.length, 256, 'exactly 16 KiB, 256 conditions');
});

// --- properties --------------------------------------------------------------------------

/** Printer for the test: a header from an AST grouped by tag, with the given whitespace. */
interface Group { tag?: string; lists: IfCondition[][] }
function print(groups: Group[], ws: string[], nots: string[]): string {
  let i = 0;
  const w = (): string => ws[i++ % ws.length] ?? '';
  const not = (): string => nots[i % nots.length] ?? 'Not';
  let out = w();
  for (const g of groups) {
    if (g.tag !== undefined) out += `<${g.tag}>` + w();
    for (const l of g.lists) {
      out += '(' + w();
      for (const c of l) out += (c.not ? not() + w() : '') + (c.kind === 'token' ? `<${c.value}>` : '[' + w() + c.value + w() + ']') + w();
      out += ')' + w();
    }
  }
  return out;
}

const chars = (s: string): fc.Arbitrary<string> => fc.constantFrom(...s.split(''));
const latin1 = fc.integer({ min: 0xa0, max: 0xff }).map((n) => String.fromCharCode(n));
const join = (a: fc.Arbitrary<string>, min: number, max: number): fc.Arbitrary<string> => fc.array(a, { minLength: min, maxLength: max }).map((x) => x.join(''));

const uriRest = join(fc.oneof(chars('abcXYZ0189-._~:/?#[]@!$&\'()*+,;=%"\\'), latin1), 0, 20);
const tokenArb = fc.oneof(
  fc.constant('DAV:no-lock'),
  fc.tuple(fc.constantFrom('urn', 'opaquelocktoken', 'DAV', 'http', 'x-y.z+1', 'A'), uriRest).map(([s, r]) => `${s}:${r}`),
);
const qdtext = fc.oneof(chars('abc XYZ019()<>[]!#$%&\'*+,-./:;=?@^_`{|}~\t'), latin1, chars('"\\ax\u0001').map((c) => '\\' + c));
const etagArb = fc.tuple(fc.boolean(), join(qdtext, 0, 12)).map(([weak, body]) => `${weak ? 'W/' : ''}"${body}"`);
const condArb: fc.Arbitrary<IfCondition> = fc.oneof(
  fc.record({ not: fc.boolean(), kind: fc.constant('token' as const), value: tokenArb }),
  fc.record({ not: fc.boolean(), kind: fc.constant('etag' as const), value: etagArb }),
);
const listArb = fc.array(condArb, { minLength: 1, maxLength: 6 });
const segArb = join(fc.oneof(chars('abc XYZ09-._~%#?+&=@é日'), latin1), 1, 8).filter((s) => s !== '.' && s !== '..');
const pathArb = fc.array(segArb, { maxLength: 4 }).map((s) => '/' + s.join('/'));
const tagArb = fc.record({
  origin: fc.constantFrom('', 'http://www.example.com', 'https://proxy.internal:8443', 'http://[::1]', 'webdav://u@h'),
  path: pathArb,
  slash: fc.boolean(),
  query: fc.constantFrom('', '?x=1', '?'),
});
const wsArb = fc.array(fc.constantFrom('', '', ' ', '\t', '  ', '\r\n ', ' \r\n\t'), { minLength: 1, maxLength: 40 });
const notArb = fc.array(fc.constantFrom('Not', 'NOT', 'not', 'nOt'), { minLength: 1, maxLength: 4 });

const headerArb = fc.oneof(
  fc.array(listArb, { minLength: 1, maxLength: 5 }).map((lists): { groups: Group[]; ast: IfHeader } => ({
    groups: [{ lists }],
    ast: { lists: lists.map((conditions) => ({ conditions })) },
  })),
  fc.array(fc.tuple(tagArb, fc.array(listArb, { minLength: 1, maxLength: 3 })), { minLength: 1, maxLength: 4 }).map((gs): { groups: Group[]; ast: IfHeader } => ({
    groups: gs.map(([t, lists]) => ({ tag: t.origin + encodeHref(t.path) + (t.slash ? '/' : '') + t.query, lists })),
    ast: { lists: gs.flatMap(([t, lists]) => lists.map((conditions): IfList => ({ resource: t.path, conditions }))) },
  })),
);

test('property: print(random AST) parses back to the same AST', () => {
  fc.assert(fc.property(headerArb, wsArb, notArb, ({ groups, ast }, ws, nots) => {
    const text = print(groups, ws, nots);
    assert.deepEqual(parseIf(text), ast, JSON.stringify(text));
    const tokens = ast.lists.flatMap((l) => l.conditions.filter((c) => c.kind === 'token').map((c) => c.value));
    assert.deepEqual(stateTokens(ast), new Set(tokens));
  }), { numRuns: 1000 });
});

const fragments = fc.constantFrom('(', ')', '<', '>', '[', ']', '"', '\\', 'Not', 'No', 'W/', ' ', '\t', '\r\n ', '\n', ',', 'urn:x', 'DAV:no-lock', '"e"', 'http://h/a', '/p', 'a', '\u0000', 'é');
const noiseArb = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.fullUnicodeString({ maxLength: 100 }),
  join(fragments, 0, 60),
  join(fragments, 1000, 4000),
);

test('property: random input parses or throws BadRequestError, quickly', () => {
  for (let i = 0; i < 200; i++) try { parseIf('(<a:b> ["c"]) (Not <d:e>)'.repeat(i % 5)); } catch { /* warm-up */ }
  let slowest = 0;
  fc.assert(fc.property(noiseArb, (s) => {
    const t0 = performance.now();
    try {
      const h = parseIf(s);
      assert.ok(h.lists.length > 0);
      stateTokens(h);
    } catch (e) {
      assert.ok(e instanceof BadRequestError, `unexpected ${String(e)} for ${JSON.stringify(s)}`);
      assert.ok(e.message.startsWith('malformed If header: '));
    }
    const dt = performance.now() - t0;
    slowest = Math.max(slowest, dt);
    assert.ok(dt < 25, `${dt.toFixed(1)} ms for ${s.length} chars`);
  }), { numRuns: 2000 });
  // worst cases at the size limit
  for (const s of ['('.repeat(16384), '(["' + 'a'.repeat(16379), '(' + '<a:b>'.repeat(3276), '<http://h/a> (<a:b>) '.repeat(780), '('.repeat(16385)]) {
    const t0 = performance.now();
    assert.throws(() => parseIf(s), BadRequestError);
    assert.ok(performance.now() - t0 < 25);
  }
  assert.ok(slowest < 25);
});

const poolEtag = fc.constantFrom('"a"', '"b"', 'W/"a"', '"c"', 'W/"b"');
test('property: a single untagged list of etag conditions is the conjunction computed independently', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({ not: fc.boolean(), etag: poolEtag }), { minLength: 1, maxLength: 6 }),
    fc.option(poolEtag, { nil: undefined }),
    wsArb,
    async (conds, current, ws) => {
      const header = print([{ lists: [conds.map((c) => ({ not: c.not, kind: 'etag' as const, value: c.etag }))] }], ws, ['Not']);
      // Independent model: compare the quoted part (W/ ignored); a missing resource matches nothing.
      const bare = (e: string): string => (e.startsWith('W/') ? e.slice(2) : e);
      const matches = (e: string): boolean => current !== undefined && bare(e) === bare(current);
      const expected = !conds.some((c) => (c.not ? matches(c.etag) : !matches(c.etag)));
      const calls: string[] = [];
      const got = await evaluateIf(parseIf(header), '/r', (p) => {
        calls.push(p);
        return { etag: current, lockTokens: new Set(['urn:held']) };
      });
      assert.equal(got, expected, header);
      assert.deepEqual(calls, ['/r']);
    },
  ), { numRuns: 1000 });
});
