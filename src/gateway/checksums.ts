import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { BadRequestError } from '../errors.js';
import { propKey, type DavState, type DeadProperty } from './davstate.js';

// Checksums for sync clients (ownCloud's dialect, which rclone's owncloud and nextcloud vendors
// speak): a PUT may carry `OC-Checksum: SHA1:<hex>` (or MD5:); davgate computes SHA1 and MD5
// of the body as it streams through, refuses the upload when the one sent does not match
// (before the upstream has all of it, so nothing is stored), and keeps both with the file.
// PROPFIND answers them as oc:checksums, but only while the file is the version they were
// computed for (its ETag): a change behind davgate's back makes them unknown, never wrong.
// Bodies without OC-Checksum are not hashed (two digests cost ~1 s of CPU per 256 MiB).

export const OC_NS = 'http://owncloud.org/ns';
/** Where the checksums are kept: a dead property of davgate's own, never listed. */
export const INTERNAL_NS = 'urn:davgate:internal';
const KEY = propKey(INTERNAL_NS, 'checksums');

export interface Expected { algorithm: 'SHA1' | 'MD5'; hex: string }

/** The checksum an OC-Checksum header asks to verify; undefined for algorithms we do not compute. */
export function parseOcChecksum(header: string): Expected | undefined {
  const m = /^\s*(SHA1|MD5|ADLER32):([0-9a-f]+)\s*$/i.exec(header);
  if (!m) throw new BadRequestError('OC-Checksum must be "SHA1:<hex>", "MD5:<hex>" or "ADLER32:<hex>"');
  const algorithm = m[1]!.toUpperCase();
  if (algorithm !== 'SHA1' && algorithm !== 'MD5') return undefined;
  const hex = m[2]!.toLowerCase();
  if (hex.length !== (algorithm === 'SHA1' ? 40 : 32)) throw new BadRequestError(`OC-Checksum: a ${algorithm} has ${algorithm === 'SHA1' ? 40 : 32} hex digits`);
  return { algorithm, hex };
}

/**
 * Passes a body through, hashing it; the last chunk is held back until the digest matched,
 * so an upstream never receives the whole of a body that fails the check.
 */
export class ChecksumCheck extends Transform {
  readonly #sha1: Hash = createHash('sha1');
  readonly #md5: Hash = createHash('md5');
  #held: Buffer | undefined;
  /** "SHA1:<hex> MD5:<hex>", once the body ended and matched. */
  sums: string | undefined;

  constructor(readonly expected: Expected) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#sha1.update(chunk);
    this.#md5.update(chunk);
    const previous = this.#held;
    this.#held = chunk;
    cb(null, previous);
  }

  override _flush(cb: TransformCallback): void {
    const sha1 = this.#sha1.digest('hex');
    const md5 = this.#md5.digest('hex');
    if ((this.expected.algorithm === 'SHA1' ? sha1 : md5) !== this.expected.hex) {
      cb(new BadRequestError(`the body does not match its OC-Checksum (${this.expected.algorithm})`, 'DAVGATE_CHECKSUM_MISMATCH'));
      return;
    }
    this.sums = `SHA1:${sha1} MD5:${md5}`;
    cb(null, this.#held);
  }
}

/** Keep `sums` with the file at `path` as it is now (`etag`). */
export async function storeChecksums(state: DavState, path: string, etag: string, sums: string): Promise<void> {
  const props = new Map(await state.properties(path) ?? []);
  const record: DeadProperty = { ns: INTERNAL_NS, local: 'checksums', xml: `${etag} ${sums}` };
  props.set(KEY, record);
  await state.setProperties(path, props);
}

/**
 * The oc:checksums value of a file whose ETag is `etag`: the digests kept when it was written
 * through davgate, else the MD5 its upstream knows (`md5`), else undefined.
 */
export function checksumsXml(dead: ReadonlyMap<string, DeadProperty> | undefined, etag: string, md5?: string): string | undefined {
  const record = dead?.get(KEY)?.xml;
  const sums = record?.startsWith(etag + ' ') ? record.slice(etag.length + 1) : md5 ? `MD5:${md5}` : undefined;
  return sums && `<checksum xmlns="${OC_NS}">${sums}</checksum>`;
}
