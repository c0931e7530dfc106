import type { ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import type { BlockSink } from '../cachemgr/cachemgr.js';

/** The client closed the connection (not a failure of ours: its request line says "client abort"). */
export function clientGone(res: ServerResponse): boolean {
  return res.destroyed || !res.socket || res.socket.destroyed;
}

/** Wait until the socket takes more data; rejects when the client went away. Leaves no listener behind. */
export function drained(res: Writable): Promise<void> {
  if (res.destroyed) return Promise.reject(new Error('client went away'));
  return new Promise<void>((resolve, reject) => {
    const onDrain = () => { cleanup(); resolve(); };
    const onClose = () => { cleanup(); reject(new Error('client went away')); };
    const cleanup = () => { res.off('drain', onDrain); res.off('close', onClose); };
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/** Write with back-pressure. */
export async function writeChunk(res: Writable, chunk: string | Buffer): Promise<void> {
  if (res.destroyed) throw new Error('client went away');
  if (!res.write(chunk)) await drained(res);
}

/**
 * Write and wait until the chunk has left for the socket (its callback): the caller may then
 * reuse the buffer (the cache's ring of read buffers).
 */
export function writeFlushed(res: ServerResponse, chunk: Buffer): Promise<void> {
  if (res.destroyed) return Promise.reject(new Error('client went away'));
  return new Promise<void>((resolve, reject) => {
    const onClose = () => reject(new Error('client went away'));
    res.once('close', onClose);
    res.write(chunk, (err) => {
      res.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}

/** A sink for the cache's range reads that writes to `res`, each chunk flushed before it is reused. */
export class ResponseSink implements BlockSink {
  /** True once the first chunk was written: the status and headers are out. */
  started = false;

  /** `begin` sends the status and headers; called before the first chunk only. */
  constructor(private readonly res: ServerResponse, private readonly begin: () => void) {}

  write(chunk: Buffer): Promise<void> {
    if (!this.started) {
      this.started = true;
      this.begin();
    }
    return writeFlushed(this.res, chunk);
  }
}
