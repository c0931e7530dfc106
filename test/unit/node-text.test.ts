// The text forms of a node's live properties, and XML escaping: what a PROPFIND or a hot GET
// prints must be what formatting each record by itself gives, whatever came before it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { textOf } from '../../src/gateway/node-text.js';
import { escapeXml } from '../../src/gateway/xml.js';
import type { Node } from '../../src/cachemgr/cachemgr.js';

const nodeAt = (path: string, mtimeMs: number, birthtimeMs = mtimeMs): Node =>
  ({ key: path, path, kind: 'file', size: 1, mtimeMs, birthtimeMs, validator: 'v', version: 'abc', checkedAt: 0 });

test('dates: each record gets its own second, also when records share or alternate seconds', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 4_102_444_800_000 }), { minLength: 1, maxLength: 20 }), (times) => {
    // Neighbours within the same second, and jumps back and forth.
    const all = times.flatMap((t) => [t, t + 1, t - (t % 1000), t + 999 - (t % 1000)]);
    for (const [i, ms] of all.entries()) {
      const t = textOf(nodeAt(`/f${i}`, ms, ms + 1500));
      assert.equal(t.lastModified, new Date(ms).toUTCString());
      assert.equal(t.created, new Date(ms + 1500).toISOString().slice(0, 19) + 'Z');
    }
  }));
});

test('escapeXml: names without markup come back as they are, the rest escaped', () => {
  assert.equal(escapeXml('plain name.txt'), 'plain name.txt');
  assert.equal(escapeXml('<img src=x onerror=alert(1)>&.txt'), '&lt;img src=x onerror=alert(1)&gt;&amp;.txt');
  assert.equal(escapeXml(`a"b'c`), `a"b'c`);
  assert.equal(escapeXml(`a"b'c<`, true), 'a&quot;b&apos;c&lt;');
  assert.equal(textOf(nodeAt('/d/<b>&.txt', 0)).displayNameXml, '&lt;b&gt;&amp;.txt');
});
