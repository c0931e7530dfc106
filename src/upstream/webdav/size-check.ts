import { Transform, type TransformCallback } from 'node:stream';
import { IncompleteBodyError } from '../../errors.js';

/** Counts the body and fails it when it ends short of, or runs past, the declared size. */
export class SizeCheck extends Transform {
  #seen = 0;
  /** The chunk that completes `expected`, held until the source has ended with nothing more. */
  #last: Buffer | undefined;
  constructor(readonly expected: number | undefined) { super(); }
  override _transform(chunk: Buffer | string, _e: BufferEncoding, cb: TransformCallback): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.#seen += buf.length;
    if (this.expected === undefined) { cb(null, buf); return; }
    if (this.#seen > this.expected) { cb(new IncompleteBodyError('request body longer than Content-Length')); return; }
    // The server commits once it has Content-Length bytes: the final bytes go out only when the
    // source has ended, so a body that turns out too long is never complete upstream.
    if (this.#seen === this.expected) { this.#last = buf; cb(); return; }
    cb(null, buf);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expected !== undefined && this.#seen !== this.expected) { cb(new IncompleteBodyError()); return; }
    cb(null, this.#last);
  }
}
