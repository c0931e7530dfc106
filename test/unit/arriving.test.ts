import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArrivingBlock } from '../../src/cachemgr/arriving.js';

test('ArrivingBlock: readers wake as bytes arrive, never before', async () => {
  const b = new ArrivingBlock(10);
  let woke = 0;
  const p = b.available(3).then((n) => { woke = n; });
  b.progress(2);
  await new Promise((r) => setImmediate(r));
  assert.equal(woke, 0, 'byte 3 has not arrived');
  b.progress(5);
  await p;
  assert.equal(woke, 5);
  b.progress(4); // a retried read repeats earlier progress: never goes backwards
  assert.equal(await b.available(4), 5);
});

test('ArrivingBlock: a failure rejects the readers still waiting, not bytes already there', async () => {
  const b = new ArrivingBlock(10);
  b.progress(4);
  const waiting = b.available(6);
  b.fail(new Error('reset'));
  await assert.rejects(waiting, /reset/);
  assert.equal(await b.available(2), 4);
  await assert.rejects(b.available(4), /reset/);
});

test('ArrivingBlock: done() hands readers the final buffer (a backend may return its own)', async () => {
  const b = new ArrivingBlock(3);
  const waiting = b.available(0);
  b.done(Buffer.from('abc'));
  assert.equal(await waiting, 3);
  assert.equal(b.buffer.toString(), 'abc');
});
