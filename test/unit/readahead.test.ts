import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadAhead } from '../../src/cachemgr/readahead.js';
import { SingleFlight } from '../../src/cachemgr/singleflight.js';

test('a lone random read gets no read-ahead', () => {
  const ra = new ReadAhead(8);
  assert.equal(ra.advance('k', 50), 0);
  assert.equal(ra.advance('k', 10), 0);
});

test('sequential reads double the window up to the maximum', () => {
  const ra = new ReadAhead(8);
  const windows = [0, 1, 2, 3, 4, 5, 6].map((i) => ra.advance('k', i));
  assert.deepEqual(windows, [0, 1, 2, 4, 8, 8, 8]);
});

test('the window survives a request that continues where the last stopped, resets on a seek', () => {
  const ra = new ReadAhead(8);
  for (let i = 0; i < 4; i++) ra.advance('k', i);
  assert.equal(ra.advance('k', 3), 4, 're-reading the last block keeps the window');
  assert.equal(ra.advance('k', 4), 8);
  assert.equal(ra.advance('k', 100), 0, 'a seek resets');
  assert.equal(ra.advance('other', 5), 0, 'per node');
});

test('maxBlocks 0 disables read-ahead', () => {
  const ra = new ReadAhead(0);
  for (let i = 0; i < 5; i++) assert.equal(ra.advance('k', i), 0);
});

test('single flight shares one execution among concurrent callers', async () => {
  const sf = new SingleFlight<number>();
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const fn = async () => { runs++; await gate; return 42; };
  const calls = Array.from({ length: 10 }, () => sf.run('x', fn));
  assert.equal(calls.filter((c) => c.joined).length, 9);
  release();
  assert.deepEqual(await Promise.all(calls.map((c) => c.promise)), Array(10).fill(42));
  assert.equal(runs, 1);
  assert.equal(sf.size, 0);
  // A failure is shared too, and the next call runs again.
  const failing = sf.run('y', async () => { throw new Error('boom'); });
  await assert.rejects(failing.promise, /boom/);
  assert.equal(sf.run('y', async () => 1).joined, false);
});
