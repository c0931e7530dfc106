import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateRead, etagOf } from '../../src/gateway/conditional.js';
import { PreconditionFailedError, RangeNotSatisfiableError } from '../../src/errors.js';
import type { Node } from '../../src/cachemgr/cachemgr.js';

const mtime = Date.parse('2026-01-02T03:04:05Z');
const node: Node = { key: 'k', path: '/f', kind: 'file', size: 100, mtimeMs: mtime, birthtimeMs: mtime, validator: 'v', version: 'abc', checkedAt: 0 };
const etag = etagOf(node);

test('ranges: single, suffix, open, clamped; several ranges fall back to the full body', () => {
  assert.equal(evaluateRead({}, node), 'full');
  assert.deepEqual(evaluateRead({ range: 'bytes=5-9' }, node), [5, 9]);
  assert.deepEqual(evaluateRead({ range: 'bytes=-10' }, node), [90, 99]);
  assert.deepEqual(evaluateRead({ range: 'bytes=10-' }, node), [10, 99]);
  assert.deepEqual(evaluateRead({ range: 'bytes=90-500' }, node), [90, 99]);
  assert.equal(evaluateRead({ range: 'bytes=0-1,5-6' }, node), 'full');
  assert.equal(evaluateRead({ range: 'items=0-1' }, node), 'full', 'unknown unit ignored');
});

test('unsatisfiable or malformed byte ranges are 416 carrying the size', () => {
  for (const range of ['bytes=100-200', 'bytes=500-', 'bytes=abc', 'bytes=9-5']) {
    assert.throws(() => evaluateRead({ range }, node), (e: unknown) => e instanceof RangeNotSatisfiableError && e.size === 100, range);
  }
});

test('If-Range: a matching ETag or date keeps the range, anything else gives the full body', () => {
  assert.deepEqual(evaluateRead({ range: 'bytes=0-0', 'if-range': etag }, node), [0, 0]);
  assert.equal(evaluateRead({ range: 'bytes=0-0', 'if-range': '"other"' }, node), 'full');
  assert.deepEqual(evaluateRead({ range: 'bytes=0-0', 'if-range': new Date(mtime).toUTCString() }, node), [0, 0]);
  assert.equal(evaluateRead({ range: 'bytes=0-0', 'if-range': new Date(mtime - 5000).toUTCString() }, node), 'full');
});

test('If-None-Match and If-Modified-Since give 304; If-Match and If-Unmodified-Since give 412', () => {
  assert.equal(evaluateRead({ 'if-none-match': etag }, node), 'not-modified');
  assert.equal(evaluateRead({ 'if-none-match': `W/${etag}` }, node), 'not-modified');
  assert.equal(evaluateRead({ 'if-none-match': '"nope"' }, node), 'full');
  assert.equal(evaluateRead({ 'if-modified-since': new Date(mtime + 1000).toUTCString() }, node), 'not-modified');
  assert.equal(evaluateRead({ 'if-modified-since': new Date(mtime - 1000).toUTCString() }, node), 'full');
  assert.equal(evaluateRead({ 'if-none-match': '"nope"', 'if-modified-since': new Date(mtime + 1000).toUTCString() }, node), 'full', 'If-None-Match wins');
  assert.throws(() => evaluateRead({ 'if-match': '"nope"' }, node), PreconditionFailedError);
  assert.equal(evaluateRead({ 'if-match': etag }, node), 'full');
  assert.throws(() => evaluateRead({ 'if-unmodified-since': new Date(mtime - 1000).toUTCString() }, node), PreconditionFailedError);
});
