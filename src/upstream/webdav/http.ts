import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { CallContext } from '../types.js';
import { statusError, transportError } from './errors.js';
import { DirectRanges, type Head } from '../direct.js';

// The HTTP layer: undici over a bounded keep-alive pool, one request per call; block reads
// from a plain-HTTP origin go straight into the block buffer first (direct.ts).
//
// Credentials: a CallContext's `authorization` (pass-through auth) is sent as is and replaces
// the configured username/password for that call. The password is kept only inside the
// Authorization header value; neither `id` nor any error message contains it.

export type Method = 'PROPFIND' | 'GET' | 'PUT' | 'MKCOL' | 'DELETE' | 'MOVE' | 'COPY';

const MAX_SMALL_BODY = 1024 * 1024; // multistatus bodies of DELETE/MOVE/COPY errors

export function header(h: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Abandon a response body (closes its connection); destroy() alone would emit an unhandled AbortError. */
export function discard(res: Dispatcher.ResponseData): void {
  const b = res.body;
  if (b.destroyed || b.readableEnded) return;
  b.on('error', () => undefined);
  b.destroy();
}

export async function drain(res: Dispatcher.ResponseData): Promise<void> {
  await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
}

/** Reads a small body whole, refusing anything larger than `limit`. */
export async function smallText(res: Dispatcher.ResponseData, limit = MAX_SMALL_BODY): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      discard(res);
      break;
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The davgate error for an unsuccessful status (the body is drained here). */
export async function fail(res: Dispatcher.ResponseData, op: Method, path: string): Promise<never> {
  await drain(res);
  throw statusError(res.statusCode, op, path);
}

export interface DavClientOptions {
  origin: string;
  username: string | undefined;
  password: string | undefined;
  passThroughAuth: boolean;
  /** Per request: time to response headers, and longest pause in a response body. */
  timeoutMs: number;
  connections: number;
}

/** Requests to one origin, with the credentials of the call. */
export class DavClient {
  readonly #pool: Pool;
  readonly #origin: string;
  /** Configured credentials as a ready header value; never printed. */
  readonly #auth: string | undefined;
  readonly #passThrough: boolean;
  readonly #timeout: number;
  /** Plain-HTTP origins only: ranged GETs straight into the caller's buffer. */
  readonly #direct: DirectRanges | undefined;

  constructor(opts: DavClientOptions) {
    const { username: user, password: pass } = opts;
    this.#origin = opts.origin;
    this.#passThrough = opts.passThroughAuth;
    this.#auth = user !== undefined ? 'Basic ' + Buffer.from(`${user}:${pass ?? ''}`, 'utf8').toString('base64') : undefined;
    this.#timeout = opts.timeoutMs;
    this.#pool = new Pool(this.#origin, {
      connections: opts.connections,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: this.#timeout,
      bodyTimeout: this.#timeout,
      connect: { timeout: Math.min(this.#timeout, 10_000) },
    });
    this.#direct = DirectRanges.forOrigin(new URL(this.#origin), this.#timeout, opts.connections);
  }

  /**
   * A ranged GET whose body goes straight into `into` (DirectRanges.range); undefined when the
   * answer is not taken or this origin is not plain HTTP. Transport failures become davgate errors.
   */
  async getRange(
    target: string, ctx: CallContext | undefined, extra: Record<string, string>, offset: number,
    into: Buffer, isVersion: (head: Head, total: number | undefined) => boolean, progress: (filled: number) => void,
  ): Promise<Buffer | undefined> {
    if (!this.#direct) return undefined;
    try {
      return await this.#direct.range(target, this.#headers(ctx, extra), offset, into, isVersion, progress);
    } catch (e) {
      throw transportError(e, 'GET');
    }
  }

  #headers(ctx: CallContext | undefined, extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { ...extra };
    // With pass-through auth only the client's own credentials are used: an anonymous client
    // must not act as the configured account (and so be asked for credentials by a 401).
    const auth = ctx?.authorization ?? (this.#passThrough ? undefined : this.#auth);
    if (auth) h.authorization = auth;
    return h;
  }

  /** One request; transport failures are thrown as they come (see `request`). */
  dispatch(
    method: Method, target: string, ctx: CallContext | undefined,
    extra: Record<string, string> = {}, body?: string | Readable,
  ): Promise<Dispatcher.ResponseData> {
    return this.#pool.request({
      origin: this.#origin,
      path: target,
      method: method as Dispatcher.HttpMethod,
      headers: this.#headers(ctx, extra),
      body,
      headersTimeout: this.#timeout,
      bodyTimeout: this.#timeout,
    });
  }

  /** One request; transport failures become davgate errors. */
  async request(
    method: Method, target: string, ctx: CallContext | undefined,
    extra: Record<string, string> = {}, body?: string | Readable,
  ): Promise<Dispatcher.ResponseData> {
    try {
      return await this.dispatch(method, target, ctx, extra, body);
    } catch (e) {
      throw transportError(e, method);
    }
  }

  async close(): Promise<void> {
    this.#direct?.close();
    await this.#pool.close().catch(() => this.#pool.destroy());
  }
}
