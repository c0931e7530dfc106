import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BadRequestError, ConflictError, ForbiddenPathError, IncompleteBodyError } from '../../src/errors.js';
import { checkRange, checkSize, checkTransfer, SizeCheck } from '../../src/upstream/checks.js';

// The checks all backends share: byte ranges, declared sizes, and the body-length guard.

/** Runs `chunks` through a SizeCheck; what came out, and the error if any. */
async function through(chunks: Array<Buffer | string>, expected: number | undefined): Promise<{ out: Buffer; err?: unknown }> {
  const got: Buffer[] = [];
  const sink = new Writable({ write(c: Buffer, _e, cb) { got.push(c); cb(); } });
  try {
    await pipeline(Readable.from(chunks), new SizeCheck(expected), sink);
    return { out: Buffer.concat(got) };
  } catch (err) {
    return { out: Buffer.concat(got), err };
  }
}

describe('SizeCheck', () => {
  it('passes a body of exactly the declared size, strings as UTF-8 bytes', async () => {
    const r = await through([Buffer.from('ab'), 'cü'], 5);
    assert.equal(r.err, undefined);
    assert.equal(r.out.toString(), 'abcü');
  });

  it('without a size, passes anything', async () => {
    assert.equal((await through(['x'.repeat(1000)], undefined)).out.length, 1000);
    assert.equal((await through([], undefined)).err, undefined);
  });

  it('fails a body that ends short', async () => {
    const r = await through(['abc'], 10);
    assert.ok(r.err instanceof IncompleteBodyError, String(r.err));
  });

  it('fails a body that runs past the size, never having passed its last bytes', async () => {
    const r = await through(['abc', 'def', 'g'], 6);
    assert.ok(r.err instanceof IncompleteBodyError, String(r.err));
    assert.equal(r.out.toString(), 'abc', 'the chunk completing the size is held back until the end');
  });

  it('an empty body with size 0 passes, one with size 1 fails', async () => {
    assert.equal((await through([], 0)).err, undefined);
    assert.ok((await through([], 1)).err instanceof IncompleteBodyError);
  });
});

describe('checkRange and checkSize', () => {
  it('accept whole, non-negative numbers', () => {
    checkRange(0, 0);
    checkRange(2 ** 40, 1 << 20);
    checkSize(undefined);
    checkSize(0);
  });

  it('refuse the rest with BadRequestError', () => {
    for (const [o, l] of [[-1, 1], [0, -1], [0.5, 1], [0, Number.NaN], [2 ** 53, 1]] as const) {
      assert.throws(() => checkRange(o, l), (e: unknown) => e instanceof BadRequestError && e.code === 'DAVGATE_BAD_RANGE', `${o}, ${l}`);
    }
    for (const s of [-1, 1.5, Number.POSITIVE_INFINITY]) assert.throws(() => checkSize(s), BadRequestError, String(s));
  });
});

describe('checkTransfer', () => {
  it('refuses the root, a name onto itself and a tree into itself; allows siblings and parents', () => {
    assert.throws(() => checkTransfer('/', '/x'), ForbiddenPathError);
    assert.throws(() => checkTransfer('/x', '/'), ForbiddenPathError);
    assert.throws(() => checkTransfer('/a', '/a'), ForbiddenPathError);
    assert.throws(() => checkTransfer('/a', '/a/b'), ConflictError);
    checkTransfer('/a', '/ab');
    checkTransfer('/a/b', '/a');
    checkTransfer('/a/b', '/c/b');
  });
});
