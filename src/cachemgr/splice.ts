import { Readable } from 'node:stream';
import { IncompleteBodyError, RangeNotSatisfiableError } from '../errors.js';

// A partial update (a byte range of an existing file written by PUT with Content-Range or by
// PATCH) becomes a whole new body: the old bytes before the range, the new ones, the old bytes
// after it. The upstream then commits it like any write, all or nothing, so a reader never
// sees half an update and a failed one leaves the old file. Streamed: memory stays bounded by
// the stream's buffer whatever the file's size.

/** Reads old bytes start..end (inclusive); each yielded buffer is valid until the next is asked for. */
export type RangeSource = (start: number, end: number) => AsyncIterable<Buffer>;

/**
 * The new file's bytes: `length` bytes of `patch` written at `start` of a file of `oldSize`
 * bytes (`start` at most `oldSize`: no holes). `patch` must yield exactly `length` bytes.
 */
export function splicedBody(old: RangeSource, oldSize: number, start: number, length: number, patch: AsyncIterable<Buffer>): Readable {
  if (start < 0 || start > oldSize) throw new RangeNotSatisfiableError(oldSize);
  async function* bytes(): AsyncGenerator<Buffer> {
    // Copied: the stream queues what it is given, and an old piece is reused once the next is read.
    if (start > 0) for await (const piece of old(0, start - 1)) yield Buffer.from(piece);
    let got = 0;
    for await (const chunk of patch) {
      got += chunk.length;
      if (got > length) throw new IncompleteBodyError(`the update is longer than its range of ${length} bytes`);
      yield chunk;
    }
    if (got < length) throw new IncompleteBodyError(`the update ended after ${got} of ${length} bytes`);
    const after = start + length;
    if (after < oldSize) for await (const piece of old(after, oldSize - 1)) yield Buffer.from(piece);
  }
  return Readable.from(bytes(), { objectMode: false, highWaterMark: 1 << 20 });
}

/** The size of the file after the update. */
export const splicedSize = (oldSize: number, start: number, length: number): number => Math.max(oldSize, start + length);
