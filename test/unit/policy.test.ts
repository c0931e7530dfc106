import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CachePolicy } from '../../src/cachemgr/policy.js';

test('cache rules: prefixes by whole segments, globs, the first match decides', () => {
  const p = new CachePolicy([
    { path: '/live', ttl: 0 },
    { path: '**/*.iso', bypass: true },
    { path: '/media/', maxFileSize: 1000, ttl: 600_000 },
    { path: '/media/**', bypass: true }, // never reached: the rule above matches first
  ], 5000);
  assert.equal(p.ttlFor('/live'), 0);
  assert.equal(p.ttlFor('/live/x.txt'), 0);
  assert.equal(p.ttlFor('/lively.txt'), 5000, 'not a prefix of a segment');
  assert.equal(p.ttlFor('/media/a/b.mp4'), 600_000);
  assert.equal(p.ttlFor('/other'), 5000);
  assert.equal(p.maxTtl, 600_000);
  assert.equal(p.cacheable('/a/b/disk.iso', 10), false);
  assert.equal(p.cacheable('/disk.iso', 10), false, 'a glob ** matches at the root too');
  assert.equal(p.cacheable('/media/small.jpg', 1000), true);
  assert.equal(p.cacheable('/media/big.mp4', 1001), false);
  assert.equal(p.cacheable('/.hidden/x.iso', 1), false, 'dot names match globs');
  assert.equal(p.cacheable('/docs/a.txt', 1e9), true);
  assert.equal(new CachePolicy([], 7).ttlFor('/x'), 7);
  assert.equal(new CachePolicy([{ path: '/', bypass: true }], 7).cacheable('/any/thing', 1), false);
});
