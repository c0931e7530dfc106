import { test } from 'node:test';
import assert from 'node:assert/strict';
import { negotiateEncoding } from '../../src/gateway/compress.js';

test('Accept-Encoding: brotli first, then gzip; q=0 refuses; * counts', () => {
  assert.equal(negotiateEncoding(undefined), undefined);
  assert.equal(negotiateEncoding(''), undefined);
  assert.equal(negotiateEncoding('gzip, deflate, br'), 'br');
  assert.equal(negotiateEncoding('gzip'), 'gzip');
  assert.equal(negotiateEncoding('br;q=0, gzip;q=0.5'), 'gzip');
  assert.equal(negotiateEncoding('GZIP; q=1.0'), 'gzip');
  assert.equal(negotiateEncoding('identity'), undefined);
  assert.equal(negotiateEncoding('*'), 'br');
  assert.equal(negotiateEncoding('*;q=0, gzip'), 'gzip');
  assert.equal(negotiateEncoding('br;q=0, gzip;q=0'), undefined);
  assert.equal(negotiateEncoding('deflate'), undefined);
});
