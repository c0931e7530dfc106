import { SignatureV4 } from '@smithy/signature-v4';
import type { S3Client } from '@aws-sdk/client-s3';
import { encodeHref } from '../davpath.js';
import { DirectRanges } from './direct.js';
import type { ReadSink } from './types.js';
import { targetOf } from './collect.js';

// Ranged GetObject requests to a plain-HTTP S3 endpoint (Ceph RGW, MinIO on a LAN), signed
// with SigV4 like the SDK's, whose bodies go straight into the block buffer (direct.ts). The
// SDK's stream reads the same RGW at about half this speed. Anything but a 206 of the expected
// object version is left to the SDK, which handles every case (and HTTPS endpoints, AWS).

export class S3DirectReads {
  readonly #ranges: DirectRanges;
  readonly #signer: SignatureV4;
  readonly #url: URL;
  readonly #bucket: string;

  private constructor(url: URL, bucket: string, signer: SignatureV4, ranges: DirectRanges) {
    this.#url = url;
    this.#bucket = bucket;
    this.#signer = signer;
    this.#ranges = ranges;
  }

  /** For a plain-HTTP, path-style endpoint; undefined otherwise (the SDK reads alone). */
  static for(client: S3Client, endpoint: string | undefined, forcePathStyle: boolean, region: string, bucket: string, timeoutMs = 30_000): S3DirectReads | undefined {
    if (!endpoint || !forcePathStyle) return undefined;
    const url = new URL(endpoint);
    if (url.pathname !== '/' && url.pathname !== '') return undefined;
    const ranges = DirectRanges.forOrigin(url, timeoutMs, 16);
    if (!ranges) return undefined;
    const c = client.config;
    const signer = new SignatureV4({ service: 's3', region, credentials: c.credentials, sha256: c.sha256, uriEscapePath: false, applyChecksum: true });
    return new S3DirectReads(url, bucket, signer, ranges);
  }

  /**
   * Bytes [offset, offset + length) of `key` when the store answers 206 for exactly that range
   * with ETag `etag` (when given); undefined when this path cannot take the answer.
   */
  async read(key: string, offset: number, length: number, etag: string | undefined, sink?: ReadSink): Promise<Buffer | undefined> {
    // RFC 3986 encoding, "/" kept: the path S3 signs and serves.
    const path = `/${encodeHref(this.#bucket)}/${encodeHref(key)}`;
    const headers: Record<string, string> = { host: this.#url.host, range: `bytes=${offset}-${offset + length - 1}` };
    if (etag) headers['if-match'] = etag;
    const signed = await this.#signer.sign({
      method: 'GET', protocol: 'http:', hostname: this.#url.hostname, port: Number(this.#url.port || 80), path, query: {}, headers,
    });
    const { host: _host, ...send } = signed.headers; // DirectRanges writes the same host itself
    return this.#ranges.range(path, send, offset, targetOf(sink, length),
      (head) => !etag || head.headers.etag === etag, (filled) => sink?.progress(filled));
  }

  close(): void {
    this.#ranges.close();
  }
}
