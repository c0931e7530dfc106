import { Transform, type TransformCallback } from 'node:stream';
import { isWithin } from '../davpath.js';
import { BadRequestError, ConflictError, ForbiddenPathError, IncompleteBodyError } from '../errors.js';

// Argument checks every backend makes the same way, and the body-length guard of writes.

/** A read's byte range: whole, non-negative numbers. */
export function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new BadRequestError('invalid byte range', 'DAVGATE_BAD_RANGE');
  }
}

/** A write's declared size, when given: a whole, non-negative number. */
export function checkSize(size: number | undefined): void {
  if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) throw new BadRequestError('invalid size');
}

/** What move and copy refuse before looking at the store: the root, a name onto itself, a tree into itself. */
export function checkTransfer(from: string, to: string): void {
  if (from === '/' || to === '/') throw new ForbiddenPathError('the root cannot be moved, copied or replaced');
  if (from === to) throw new ForbiddenPathError('source and destination are the same');
  if (isWithin(to, from)) throw new ConflictError('destination lies inside the source');
}

/**
 * Passes a body through, counting it, and fails it (IncompleteBodyError) when it ends short
 * of, or runs past, the declared size; without one it only passes it through. The chunk that
 * completes the size is held back until the source has ended with nothing more: a backend (or
 * a server) that commits once it has `expected` bytes never sees a body that turns out too long.
 */
export class SizeCheck extends Transform {
  #seen = 0;
  #last: Buffer | undefined;
  constructor(readonly expected: number | undefined) { super(); }
  override _transform(chunk: Buffer | string, _e: BufferEncoding, cb: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.#seen += buf.length;
    if (this.expected === undefined) { cb(null, buf); return; }
    if (this.#seen > this.expected) { cb(new IncompleteBodyError('request body longer than Content-Length')); return; }
    if (this.#seen === this.expected) { this.#last = buf; cb(); return; }
    cb(null, buf);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expected !== undefined && this.#seen !== this.expected) { cb(new IncompleteBodyError()); return; }
    cb(null, this.#last);
  }
}
