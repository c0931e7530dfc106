import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockBufferPool } from '../../src/cachemgr/blockpool.js';

const turn = () => new Promise<void>((r) => setImmediate(r));

test('a released buffer is reused after the current turn, not before', async () => {
  const pool = new BlockBufferPool(4096, 2);
  const a = pool.take();
  assert.equal(a.length, 4096);
  pool.release(a);
  assert.notEqual(pool.take(), a, 'not reused in the turn it was released');
  await turn();
  assert.equal(pool.take(), a);
});

test('every holder must let go; a hold in the same turn as the last release keeps the buffer', async () => {
  const pool = new BlockBufferPool(4096, 2);
  const a = pool.take();
  pool.hold(a); // a reader
  pool.release(a); // the fetch
  await turn();
  assert.equal(pool.freeCount, 0, 'the reader still holds it');
  pool.release(a);
  pool.hold(a); // got it from a promise in the same turn
  await turn();
  assert.equal(pool.freeCount, 0);
  assert.ok(pool.owns(a));
  pool.release(a);
  await turn();
  assert.equal(pool.freeCount, 1);
  assert.ok(!pool.owns(a), 'a free buffer is not in use');
});

test('a discarded buffer is never reused; other buffers are ignored; free buffers are bounded and trimmed', async () => {
  const pool = new BlockBufferPool(4096, 2);
  const a = pool.take();
  pool.hold(a);
  pool.discard(a);
  pool.release(a);
  pool.release(a);
  const foreign = Buffer.alloc(4096);
  pool.hold(foreign);
  pool.release(foreign);
  assert.ok(!pool.owns(foreign));
  await turn();
  assert.equal(pool.freeCount, 0);
  const bs = [pool.take(), pool.take(), pool.take()];
  for (const b of bs) pool.release(b);
  await turn();
  assert.equal(pool.freeCount, 2, 'at most maxFree kept');
  assert.ok(!bs.includes(a));
  pool.trim();
  assert.equal(pool.freeCount, 0);
});

test('a span buffer is held through its parts, and reused only for a span of its size', async () => {
  const pool = new BlockBufferPool(4096, 2);
  const span = pool.take(3 * 4096);
  const [a, b, c] = pool.parts(span, [4096, 4096, 4096]);
  assert.equal(b!.byteOffset - a!.byteOffset, 4096);
  assert.ok(pool.owns(c!));
  pool.hold(b!); // a reader of the middle block
  pool.release(span); // the fetch
  await turn();
  assert.equal(pool.freeCount, 0, 'the reader of a part holds the whole');
  pool.release(b!);
  await turn();
  assert.equal(pool.freeCount, 1);
  assert.notEqual(pool.take().buffer, span.buffer, 'a block takes a block-sized buffer');
  assert.equal(pool.take(3 * 4096), span);
});
