import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { contentRangeSpan, updateRangeSpan } from '../../src/gateway/partial.js';
import { splicedBody, splicedSize } from '../../src/cachemgr/splice.js';
import { BadRequestError, IncompleteBodyError, LengthRequiredError, RangeNotSatisfiableError } from '../../src/errors.js';

test('Content-Range of a partial PUT: parsed against the body and the file', () => {
  assert.deepEqual(contentRangeSpan('bytes 2-4/*', 3, 10), { start: 2, length: 3 });
  assert.deepEqual(contentRangeSpan('bytes 10-11/12', 2, 10), { start: 10, length: 2 }, 'at the end: appends');
  assert.throws(() => contentRangeSpan('bytes 11-11/*', 1, 10), RangeNotSatisfiableError, 'a hole');
  for (const bad of ['bytes 4-2/*', 'bytes 0-1/1', 'bytes=0-1', 'bytes 0-1', 'bytes -1-2/*', 'bytes 0-99999999999999999/*']) {
    assert.throws(() => contentRangeSpan(bad, 2, 10), BadRequestError, bad);
  }
  assert.throws(() => contentRangeSpan('bytes 0-3/*', 2, 10), BadRequestError, 'length mismatch');
  assert.throws(() => contentRangeSpan('bytes 0-1/*', undefined, 10), LengthRequiredError);
});

test('X-Update-Range of a PATCH: ranges, open ranges, suffixes, append', () => {
  assert.deepEqual(updateRangeSpan('bytes=3-6', 4, 10), { start: 3, length: 4 });
  assert.deepEqual(updateRangeSpan('bytes=8-', 5, 10), { start: 8, length: 5 });
  assert.deepEqual(updateRangeSpan('bytes=-2', 2, 10), { start: 8, length: 2 });
  assert.deepEqual(updateRangeSpan('bytes=-2', 5, 10), { start: 8, length: 5 }, 'a suffix may grow the file');
  assert.deepEqual(updateRangeSpan('Append', 3, 10), { start: 10, length: 3 });
  assert.throws(() => updateRangeSpan('bytes=-0', 1, 10), RangeNotSatisfiableError);
  assert.throws(() => updateRangeSpan('bytes=-11', 1, 10), RangeNotSatisfiableError);
  assert.throws(() => updateRangeSpan('bytes=11-', 1, 10), RangeNotSatisfiableError);
  for (const bad of ['bytes=4-2', 'bytes=0-1,3-4', 'bytes=a-b', 'prepend', '']) assert.throws(() => updateRangeSpan(bad, 2, 10), BadRequestError, bad);
  assert.throws(() => updateRangeSpan('bytes=0-3', 2, 10), BadRequestError, 'length mismatch');
  assert.throws(() => updateRangeSpan('append', undefined, 10), LengthRequiredError);
});

const text = async (r: Readable) => { const parts: Buffer[] = []; for await (const c of r) parts.push(c as Buffer); return Buffer.concat(parts).toString(); };

test('splicedBody: old bytes around the update, each old piece copied before the next is read', async () => {
  const old = Buffer.from('0123456789');
  const shared = Buffer.alloc(3); // one buffer reused for every piece, as the range reader may
  const source = async function* (a: number, b: number) {
    for (let i = a; i <= b; i += 3) { const n = old.copy(shared, 0, i, Math.min(b + 1, i + 3)); yield shared.subarray(0, n); }
  };
  assert.equal(await text(splicedBody(source, 10, 2, 3, Readable.from([Buffer.from('XY'), Buffer.from('Z')]))), '01XYZ56789');
  assert.equal(await text(splicedBody(source, 10, 8, 4, Readable.from([Buffer.from('abcd')]))), '01234567abcd');
  assert.equal(splicedSize(10, 8, 4), 12);
  assert.equal(splicedSize(10, 2, 3), 10);
  await assert.rejects(text(splicedBody(source, 10, 0, 4, Readable.from([Buffer.from('ab')]))), IncompleteBodyError, 'short');
  await assert.rejects(text(splicedBody(source, 10, 0, 1, Readable.from([Buffer.from('ab')]))), IncompleteBodyError, 'long');
  assert.throws(() => splicedBody(source, 10, 11, 1, Readable.from([])), RangeNotSatisfiableError);
});
