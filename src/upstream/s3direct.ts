import { SignatureV4 } from '@smithy/signature-v4';
import type { S3Client } from '@aws-sdk/client-s3';
import { DirectRanges, type Head } from './direct.js';
import type { ReadSink } from './types.js';
import { targetOf } from './collect.js';

// Ranged GetObject requests to a plain-HTTP S3 endpoint (Ceph RGW, MinIO on a LAN), signed
// with SigV4 like the SDK's, whose bodies go straight into the block buffer (direct.ts). The
// SDK's stream reads the same RGW at about half this speed. Anything but a 206 of the expected
// object version is left to the SDK, which handles every case (and HTTPS endpoints, AWS).

/** RFC 3986 encoding of a key, "/" kept: the path S3 signs and serves. */
function encodeKey(key: string): string {
  return key.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())).join('/');
}

function contentRangeStart(value: string | undefined): number | undefined {
  const m = /^bytes (\d+)-\d+\/\d+$/.exec(value ?? '');
  return m ? Number(m[1]) : undefined;
}

export class S3DirectReads {
  readonly #ranges: DirectRanges;
  readonly #signer: SignatureV4;
  readonly #url: URL;
  readonly #bucket: string;

  private constructor(url: URL, bucket: string, signer: SignatureV4, timeoutMs: number) {
    this.#url = url;
    this.#bucket = bucket;
    this.#signer = signer;
    this.#ranges = new DirectRanges(url.hostname.replace(/^\[|\]$/g, ''), Number(url.port || 80), url.host, timeoutMs, 16);
  }

  /** For a plain-HTTP, path-style endpoint; undefined otherwise (the SDK reads alone). */
  static for(client: S3Client, endpoint: string | undefined, forcePathStyle: boolean, region: string, bucket: string, timeoutMs = 30_000): S3DirectReads | undefined {
    if (!endpoint || !forcePathStyle) return undefined;
    const url = new URL(endpoint);
    if (url.protocol !== 'http:' || (url.pathname !== '/' && url.pathname !== '')) return undefined;
    const c = client.config;
    const signer = new SignatureV4({ service: 's3', region, credentials: c.credentials, sha256: c.sha256, uriEscapePath: false, applyChecksum: true });
    return new S3DirectReads(url, bucket, signer, timeoutMs);
  }

  /**
   * Bytes [offset, offset + length) of `key` when the store answers 206 for exactly that range
   * with ETag `etag` (when given); undefined when this path cannot take the answer.
   */
  async read(key: string, offset: number, length: number, etag: string | undefined, sink?: ReadSink): Promise<Buffer | undefined> {
    const path = `/${encodeKey(this.#bucket)}/${encodeKey(key)}`;
    const headers: Record<string, string> = { host: this.#url.host, range: `bytes=${offset}-${offset + length - 1}` };
    if (etag) headers['if-match'] = etag;
    const signed = await this.#signer.sign({
      method: 'GET', protocol: 'http:', hostname: this.#url.hostname, port: Number(this.#url.port || 80), path, query: {}, headers,
    });
    const { host: _host, ...send } = signed.headers; // DirectRanges writes the same host itself
    const into = targetOf(sink, length);
    const r = await this.#ranges.get(path, send, into, (head: Head) =>
      head.status === 206 && contentRangeStart(head.headers['content-range']) === offset && (!etag || head.headers.etag === etag),
    (filled) => sink?.progress(filled));
    if (!r.taken) return undefined;
    return r.got === length ? into : into.subarray(0, r.got);
  }

  close(): void {
    this.#ranges.close();
  }
}
