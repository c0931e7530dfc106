// The XML reader: namespaces resolved, limits before work, no recursion; and innerXml, which must
// serialise any parsed content so that it parses back to the same tree (property test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { innerXml, parseXml, type XmlElement } from '../../src/gateway/xml.js';
import { DavgateError } from '../../src/errors.js';

const parse = (s: string, limits?: { maxDepth: number; maxElements: number }) => parseXml(Buffer.from(s), limits);

test('namespaces by URI, not by prefix; empty body is undefined; malformed is a 400', () => {
  const a = parse('<a:propfind xmlns:a="DAV:"><a:prop><x:y xmlns:x="urn:x" x:attr="1">t</x:y></a:prop></a:propfind>')!;
  assert.deepEqual([a.ns, a.local], ['DAV:', 'propfind']);
  const y = a.children[0]!.children[0]!;
  assert.deepEqual([y.ns, y.local, y.text, y.attrs], ['urn:x', 'y', 't', [{ ns: 'urn:x', local: 'attr', value: '1' }]]);
  assert.equal(parse('   \n'), undefined);
  for (const bad of ['<a>', '<a></b>', '<a/><b/>', 'text', '<a xmlns:p="x"><q:b/></a>']) {
    assert.throws(() => parse(bad), (e: unknown) => e instanceof DavgateError && e.code === 'DAVGATE_BAD_XML', bad);
  }
});

test('nesting beyond maxDepth is a 400 and element counts beyond maxElements a 413, however deep the rest goes', () => {
  const nested = (n: number) => '<a>'.repeat(n) + '</a>'.repeat(n);
  assert.ok(parse(nested(64)));
  assert.throws(() => parse(nested(65)), (e: unknown) => e instanceof DavgateError && e.code === 'DAVGATE_BAD_XML');
  // 200k levels: stopped at the 65th element, so no stack and no quadratic cost.
  assert.throws(() => parse(nested(200_000)), /nested deeper than 64/);
  assert.throws(() => parse('<r>' + '<x/>'.repeat(20), { maxDepth: 64, maxElements: 10 }), (e: unknown) => e instanceof DavgateError && e.code === 'DAVGATE_BODY_TOO_LARGE');
});

// Random element trees (namespaces, attributes, text with markup characters), written out plainly.
const name = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/);
const text = fc.string({ maxLength: 12 }).map((s) => s.replace(/[^\x20-\x7e]/g, ''));
type Tree = { ns: string; local: string; attrs: Array<[string, string]>; kids: Array<Tree | string> };
const leafText = text.filter((s) => s.length > 0);
const treeAt = (depth: number): fc.Arbitrary<Tree> => fc.record({
  ns: fc.constantFrom('', 'DAV:', 'urn:x', 'http://e.example/ns#'),
  local: name,
  attrs: fc.uniqueArray(fc.tuple(name, text), { maxLength: 2, selector: (a) => a[0] }),
  kids: depth === 0 ? fc.array(leafText, { maxLength: 2 }) : fc.array(fc.oneof(treeAt(depth - 1), leafText), { maxLength: 3 }),
});
const tree = treeAt(3);
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
function write(t: Tree, depth = 0): string {
  const p = `p${depth}`;
  const tag = t.ns ? `${p}:${t.local}` : t.local;
  const decl = t.ns ? ` xmlns:${p}="${esc(t.ns)}"` : '';
  const attrs = t.attrs.map(([k, v]) => ` ${k}="${esc(v)}"`).join('');
  return `<${tag}${decl}${attrs}>${t.kids.map((k) => (typeof k === 'string' ? esc(k) : write(k, depth + 1))).join('')}</${tag}>`;
}
/** What the tree means: names by URI, text merged where adjacent. */
interface Meaning { ns: string; local: string; attrs: unknown[]; nodes: unknown[] }
function meaning(el: XmlElement): Meaning {
  const nodes: unknown[] = [];
  for (const n of el.nodes) {
    if (typeof n === 'string') {
      if (typeof nodes[nodes.length - 1] === 'string') nodes[nodes.length - 1] = (nodes[nodes.length - 1] as string) + n;
      else nodes.push(n);
    } else nodes.push(meaning(n));
  }
  return { ns: el.ns, local: el.local, attrs: [...el.attrs].sort((a, b) => a.local.localeCompare(b.local)), nodes };
}

test('property: innerXml of any parsed element parses back to the same content', () => {
  fc.assert(fc.property(tree, (t) => {
    const parsed = parse(`<root xmlns="urn:default">${write(t)}</root>`)!;
    const again = parse(`<wrap xmlns="urn:other" xmlns:p0="urn:trap">${innerXml(parsed)}</wrap>`)!;
    assert.deepEqual(meaning(again).nodes, meaning(parsed).nodes);
  }), { numRuns: 300 });
});
