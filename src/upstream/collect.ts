import type { Readable } from 'node:stream';
import type { ReadSink } from './types.js';

/** Where `length` bytes of a read go: the sink's buffer (exactly that long), or a new one. */
export function targetOf(sink: ReadSink | undefined, length: number): Buffer {
  if (!sink) return Buffer.allocUnsafe(length);
  return sink.buffer.length === length ? sink.buffer : sink.buffer.subarray(0, length);
}

/**
 * Bytes [skip, skip + length) of a response body, copied into one buffer (the sink's, when
 * given, announcing each piece) as they arrive. 'data' events rather than an async iterator and
 * a concat at the end: those cost about as much as the transfer itself on loopback. Resolves
 * with fewer bytes when the body ends early. What follows our bytes is drained when the body's
 * length says it is short (a ranged answer: the keep-alive connection is reused; destroying it
 * costs a new connection per block, which made cold S3 reads 3x slower), else cut off.
 */
export function collectBody(body: Readable, skip: number, length: number, sink?: ReadSink, bodyLength?: number): Promise<Buffer> {
  const out = targetOf(sink, length);
  const rest = bodyLength === undefined ? Infinity : bodyLength - skip - length;
  let got = 0;
  return new Promise<Buffer>((resolve, reject) => {
    const done = () => resolve(got === length ? out : out.subarray(0, got));
    body.on('data', (c: Buffer) => {
      let b = c;
      if (skip > 0) {
        if (b.length <= skip) { skip -= b.length; return; }
        b = b.subarray(skip);
        skip = 0;
      }
      got += b.copy(out, got, 0, Math.min(b.length, length - got));
      sink?.progress(got);
      if (got >= length) {
        body.removeAllListeners('data');
        if (rest <= 65536) body.resume();
        else body.destroy();
        done();
      }
    });
    body.once('end', done);
    body.once('error', reject);
  });
}
