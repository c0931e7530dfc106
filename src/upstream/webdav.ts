import type { Readable } from 'node:stream';
import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { SaxesParser } from 'saxes';
import { Pool, type Dispatcher } from 'undici';
import {
  BadRequestError, ConfigError, ConflictError, DavgateError, ExistsError, ForbiddenPathError, IncompleteBodyError,
  InsufficientStorageError, IsADirectoryError, NotADirectoryError, NotFoundError, PreconditionFailedError,
  UnauthorizedError, UnsupportedError, UpstreamUnavailableError,
} from '../errors.js';
import { encodeHref, isWithin, joinPath, nameOf, parentOf } from '../davpath.js';
import type { CallContext, Capabilities, Entry, Quota, Upstream } from './types.js';

// Another WebDAV server (nginx + dav-ext, Apache mod_dav, rclone serve webdav, Nextcloud, ...)
// as the upstream, spoken to with undici over a bounded keep-alive pool.
//
// Paths: the base URL may carry a path prefix ("http://host/dav/"); canonical "/a b" is sent
// as "<prefix>/a%20b". Collections are addressed with a trailing slash where a method needs it
// (nginx refuses MKCOL, DELETE, MOVE and COPY of a collection without one).
//
// Validators: the server's ETag when PROPFIND gives one (Apache), with any "W/" dropped and the
// mtime and size appended ("<etag>:<mtimeMs>:<size>"), else "lastmodified:<mtimeMs>:<size>"
// (nginx's dav-ext module reports no getetag). Apache marks the ETag of a file modified less than
// a second ago as weak and turns it strong a second later; dropping "W/" keeps the validator
// stable across that change, so the cache does not drop the blocks it has just written.
// Reads are conditional (If-Match with the strong form, or If-Unmodified-Since), and every
// response is checked again against the validator (ETag, Last-Modified, total size), so a block
// is never cut from another version of a file. Apache answers If-Match with 412 while its ETag
// is still weak: when a PROPFIND shows the version is still current, the read is repeated
// unconditionally and the response check decides.
// With nginx the validator has one-second resolution: two writes of the same size within one
// second look alike (nginx's own ETag is built from the same two numbers). Rewrites made through
// this instance are still told apart: when the server reports a validator the path already had,
// a generation is appended ("<validator>:g<N>", remembered per path, bounded, per process).
// Rewrites by others within the same second, or through another gateway process, are not.
//
// Writes: PUT streams the body; the server's PUT is what makes a write atomic, and both nginx
// (client_body_temp_path, then rename) and Apache mod_dav_fs (a temporary file beside the
// target, then rename) write a complete body to a temporary file and rename it into place.
// A body that errors, ends short of or runs past `size` destroys the upstream request, so the
// server sees a truncated body and discards it: nothing is ever committed short.
//
// Credentials: a CallContext's `authorization` (pass-through auth) is sent as is and replaces
// the configured username/password for that call. The password is kept only inside the
// Authorization header value; neither `id` nor any error message contains it.

export interface WebDavUpstreamOptions {
  url: string;
  username?: string;
  password?: string;
  /** Informational here: the gateway puts each client's Authorization into the CallContext. */
  passThroughAuth?: boolean;
  /** Reported as quota-available-bytes (capped by the server's own RFC 4331 figure if it has one). */
  quotaBytes?: number;
  /** Per request: time to response headers, and longest pause in a response body (default 30 s). */
  timeoutMs?: number;
  /** Connections to the server at most (default 16). */
  connections?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_CONNECTIONS = 16;
const MAX_TEXT = 64 * 1024; // longest text kept for one XML element
const MAX_SMALL_BODY = 1024 * 1024; // multistatus bodies of DELETE/MOVE/COPY errors
const MAX_GENERATIONS = 10_000; // paths whose same-second rewrites are remembered

const PROPS = ['resourcetype', 'getcontentlength', 'getlastmodified', 'getetag', 'creationdate'] as const;
const QUOTA_PROPS = ['quota-available-bytes', 'quota-used-bytes'] as const;
const CAPTURED = new Set<string>(['getcontentlength', 'getlastmodified', 'getetag', 'creationdate', ...QUOTA_PROPS]);

function propfindBody(props: readonly string[]): string {
  return '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:prop>' +
    props.map((p) => `<D:${p}/>`).join('') + '</D:prop></D:propfind>';
}
const STAT_BODY = propfindBody(PROPS);
const QUOTA_BODY = propfindBody(QUOTA_PROPS);

// ---------------------------------------------------------------------------------------------
// Multistatus parsing (streaming)

interface DavResponse {
  href: string;
  /** A <D:status> directly in the response (RFC 4918 §14.24): no propstats then. */
  status?: number;
  /** Properties from 2xx propstats only; 404/405/... propstats are ignored. */
  props: Map<string, string>;
  collection: boolean;
  /** At least one propstat succeeded (a response with only 404 propstats describes nothing). */
  ok: boolean;
}

function statusCode(line: string): number | undefined {
  const m = /^\s*HTTP\/\d(?:\.\d)?\s+(\d{3})\b/i.exec(line);
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

/**
 * Push parser for a DAV:multistatus body: feed it text, collect each <D:response> as soon as
 * it closes from `take()`. Memory is bounded by one response plus one chunk of text.
 */
class MultiStatusParser {
  #parser = new SaxesParser({ xmlns: true });
  #done: DavResponse[] = [];
  #stack: string[] = [];
  #cur: DavResponse | null = null;
  #ps: { status?: number; props: Map<string, string>; collection: boolean } | null = null;
  #text: string | null = null;
  #error: Error | null = null;

  constructor() {
    const p = this.#parser;
    p.on('error', (e) => { this.#error ??= e; });
    p.on('opentag', (node) => {
      const name = node.uri === 'DAV:' ? node.local : `{${node.uri}}${node.local}`;
      this.#stack.push(name);
      const depth = this.#stack.length;
      const at = (i: number) => this.#stack[i];
      if (at(0) !== 'multistatus') return;
      if (depth === 2 && name === 'response') {
        this.#cur = { href: '', props: new Map(), collection: false, ok: false };
      } else if (!this.#cur || at(1) !== 'response') {
        return;
      } else if (depth === 3 && (name === 'href' || name === 'status')) {
        this.#text = '';
      } else if (depth === 3 && name === 'propstat') {
        this.#ps = { props: new Map(), collection: false };
      } else if (this.#ps && at(2) === 'propstat') {
        if (depth === 4 && name === 'status') this.#text = '';
        else if (depth === 5 && at(3) === 'prop' && CAPTURED.has(name)) this.#text = '';
        else if (depth === 6 && at(3) === 'prop' && at(4) === 'resourcetype' && name === 'collection') this.#ps.collection = true;
      }
    });
    const onText = (t: string) => {
      if (this.#text !== null && this.#text.length < MAX_TEXT) this.#text += t;
    };
    p.on('text', onText);
    p.on('cdata', onText);
    p.on('closetag', () => {
      const depth = this.#stack.length;
      const name = this.#stack.pop();
      const text = this.#text;
      this.#text = null;
      const cur = this.#cur;
      if (!cur || this.#stack[0] !== 'multistatus' || this.#stack[1] !== 'response' && depth > 2) return;
      if (depth === 2 && name === 'response') {
        this.#cur = null;
        if (cur.href) this.#done.push(cur);
      } else if (depth === 3 && name === 'href') {
        if (!cur.href && text !== null) cur.href = text.trim();
      } else if (depth === 3 && name === 'status') {
        if (text !== null) cur.status = statusCode(text);
      } else if (depth === 3 && name === 'propstat') {
        const ps = this.#ps;
        this.#ps = null;
        if (ps && (ps.status === undefined || (ps.status >= 200 && ps.status < 300))) {
          for (const [k, v] of ps.props) cur.props.set(k, v);
          if (ps.collection) cur.collection = true;
          cur.ok = true;
        }
      } else if (this.#ps && depth === 4 && name === 'status') {
        if (text !== null) this.#ps.status = statusCode(text);
      } else if (this.#ps && depth === 5 && name !== undefined && text !== null) {
        this.#ps.props.set(name, text.trim());
      }
    });
  }

  write(text: string): void {
    if (text) this.#parser.write(text);
    this.#check();
  }

  close(): void {
    this.#parser.close();
    this.#check();
  }

  /** Responses completed since the last call. */
  take(): DavResponse[] {
    const out = this.#done;
    this.#done = [];
    return out;
  }

  #check(): void {
    if (this.#error) throw new UpstreamUnavailableError(`malformed multistatus from the upstream: ${this.#error.message.slice(0, 200)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Validators

interface Expect {
  /** Strong form of the ETag ("W/" dropped). */
  etag?: string;
  mtimeMs?: number;
  size?: number;
}

const stripWeak = (etag: string): string => etag.trim().replace(/^W\//i, '');

/** "<base>:g<N>" → {base, gen}; a validator without the suffix is generation 0. */
function splitGen(v: string): { base: string; gen: number } {
  const m = /^(.*):g(\d+)$/.exec(v);
  return m?.[1] !== undefined ? { base: m[1], gen: Number(m[2]) } : { base: v, gen: 0 };
}

function parseValidator(validator: string): Expect | null {
  const v = splitGen(validator).base;
  let m = /^("[^"]*"):(-?\d+):(\d+)$/.exec(v);
  if (m) return { etag: m[1], mtimeMs: Number(m[2]), size: Number(m[3]) };
  m = /^lastmodified:(-?\d+):(\d+)$/.exec(v);
  if (m) return { mtimeMs: Number(m[1]), size: Number(m[2]) };
  return null;
}

function header(h: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** "bytes a-b/total" or "bytes * /total" → {start, total}. */
function contentRange(value: string | undefined): { start?: number; total?: number } {
  const m = /^\s*bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)\s*$/i.exec(value ?? '');
  if (!m) return {};
  return { start: m[1] !== undefined ? Number(m[1]) : undefined, total: m[2] !== undefined && m[2] !== '*' ? Number(m[2]) : undefined };
}

// ---------------------------------------------------------------------------------------------
// Size-checked body

/** Counts the body and fails it when it ends short of, or runs past, the declared size. */
class SizeCheck extends Transform {
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

// ---------------------------------------------------------------------------------------------

type Method = 'PROPFIND' | 'GET' | 'PUT' | 'MKCOL' | 'DELETE' | 'MOVE' | 'COPY';

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

/** Transport failures (undici, sockets) become davgate errors here. No URL, no header in the message. */
function transportError(err: unknown, op: string): DavgateError {
  if (err instanceof DavgateError) return err;
  const code = (err as { code?: string } | undefined)?.code;
  // e.g. a forwarded Authorization header with a line break in it: never sent.
  if (code === 'UND_ERR_INVALID_ARG') return new BadRequestError(`invalid request to the WebDAV upstream (${op})`);
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new DavgateError('DAVGATE_UPSTREAM_TIMEOUT', `WebDAV upstream timed out (${op}, ${code})`);
  }
  return new UpstreamUnavailableError(`WebDAV upstream unreachable (${op}${code ? `, ${code}` : ''})`);
}

/** Abandon a response body (closes its connection); destroy() alone would emit an unhandled AbortError. */
function discard(res: Dispatcher.ResponseData): void {
  const b = res.body;
  if (b.destroyed || b.readableEnded) return;
  b.on('error', () => undefined);
  b.destroy();
}

async function drain(res: Dispatcher.ResponseData): Promise<void> {
  await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
}

/** Reads a small body whole, refusing anything larger than `limit`. */
async function smallText(res: Dispatcher.ResponseData, limit = MAX_SMALL_BODY): Promise<string> {
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

export class WebDavUpstream implements Upstream {
  readonly id: string;
  readonly capabilities: Capabilities;
  readonly #pool: Pool;
  readonly #origin: string;
  /** Encoded path prefix of the base URL without its trailing slash ("" or "/dav"). */
  readonly #basePath: string;
  /** Decoded segments of the prefix, to recognise hrefs. */
  readonly #baseSegs: string[];
  readonly #baseUrl: URL;
  /** Configured credentials as a ready header value; never printed. */
  readonly #auth: string | undefined;
  readonly #passThrough: boolean;
  readonly #timeout: number;
  readonly #quotaBytes: number | undefined;
  /**
   * Rewrites through this instance that the server's validator cannot tell apart (nginx: same
   * size within the same second): path → (server's validator → how many times content was
   * replaced under it). Such entries carry "<validator>:g<N>". Bounded; per process.
   */
  readonly #gens = new Map<string, Map<string, number>>();

  constructor(opts: WebDavUpstreamOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new ConfigError('upstream.url is not a valid URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('upstream.url must be http: or https:');
    // Credentials in the URL work too, but never stay in it (the id is printed and hashed).
    const urlUser = url.username ? safeDecode(url.username) : undefined;
    const urlPass = url.password ? safeDecode(url.password) : undefined;
    url.username = '';
    url.password = '';
    url.search = '';
    url.hash = '';
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    this.#baseUrl = url;
    this.#origin = url.origin;
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.#baseSegs = url.pathname.split('/').filter(Boolean).map((s) => safeDecode(s) ?? s);
    const user = opts.username ?? urlUser;
    const pass = opts.password ?? urlPass;
    this.#passThrough = opts.passThroughAuth === true;
    this.#auth = user !== undefined ? 'Basic ' + Buffer.from(`${user}:${pass ?? ''}`, 'utf8').toString('base64') : undefined;
    this.#timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#quotaBytes = opts.quotaBytes;
    this.id = 'webdav:' + url.href;
    this.capabilities = Object.freeze({ serverSideCopy: true, quota: opts.quotaBytes !== undefined, setMtime: false });
    this.#pool = new Pool(this.#origin, {
      connections: opts.connections ?? DEFAULT_CONNECTIONS,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: this.#timeout,
      bodyTimeout: this.#timeout,
      connect: { timeout: Math.min(this.#timeout, 10_000) },
    });
  }

  /** Never let the credentials show up in a console.log/inspect of the object. */
  toJSON(): object { return { id: this.id }; }
  [Symbol.for('nodejs.util.inspect.custom')](): string { return `WebDavUpstream(${this.id})`; }

  // ----- plumbing ------------------------------------------------------------------------------

  /** Refuse anything that is not a canonical path (the backend's own confinement). */
  #check(path: string): void {
    if (typeof path !== 'string' || !path.startsWith('/')) throw new ForbiddenPathError('not an absolute path');
    if (path.includes('\0')) throw new ForbiddenPathError('NUL byte');
    if (path === '/') return;
    for (const s of path.slice(1).split('/')) {
      if (s === '' || s === '.' || s === '..') throw new ForbiddenPathError(`non-canonical segment "${s}"`);
    }
  }

  /** Request path (encoded) of a canonical path; `dir` adds the trailing slash of a collection. */
  #target(path: string, dir = false): string {
    if (path === '/') return this.#basePath + '/';
    return this.#basePath + encodeHref(path) + (dir ? '/' : '');
  }

  /** Canonical path of an href from a response, or null when it lies outside the base. */
  #pathOfHref(href: string): string | null {
    let u: URL;
    try {
      u = new URL(href, this.#baseUrl);
    } catch {
      return null;
    }
    const segs: string[] = [];
    for (const raw of u.pathname.split('/')) {
      if (raw === '') continue;
      const s = safeDecode(raw);
      if (s === undefined || s.includes('/') || s.includes('\0') || s === '.' || s === '..') return null;
      segs.push(s);
    }
    if (segs.length < this.#baseSegs.length) return null;
    for (let i = 0; i < this.#baseSegs.length; i++) if (segs[i] !== this.#baseSegs[i]) return null;
    return '/' + segs.slice(this.#baseSegs.length).join('/');
  }

  #headers(ctx: CallContext | undefined, extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { ...extra };
    // With pass-through auth only the client's own credentials are used: an anonymous client
    // must not act as the configured account (and so be asked for credentials by a 401).
    const auth = ctx?.authorization ?? (this.#passThrough ? undefined : this.#auth);
    if (auth) h.authorization = auth;
    return h;
  }

  async #request(
    method: Method, target: string, ctx: CallContext | undefined,
    extra: Record<string, string> = {}, body?: string | Readable,
  ): Promise<Dispatcher.ResponseData> {
    try {
      return await this.#pool.request({
        origin: this.#origin,
        path: target,
        method: method as Dispatcher.HttpMethod,
        headers: this.#headers(ctx, extra),
        body,
        headersTimeout: this.#timeout,
        bodyTimeout: this.#timeout,
      });
    } catch (e) {
      throw transportError(e, method);
    }
  }

  /** The davgate error for an unsuccessful status (the body is drained here). */
  async #fail(res: Dispatcher.ResponseData, op: Method, path: string): Promise<never> {
    await drain(res);
    throw statusError(res.statusCode, op, path);
  }

  /** Entry of one multistatus response, or null when it is a failed (non-2xx) response. */
  #entry(path: string, r: DavResponse): Entry | null {
    if (r.status !== undefined ? r.status < 200 || r.status >= 300 : !r.ok) return null;
    const kind = r.collection ? 'dir' : 'file';
    const size = kind === 'dir' ? 0 : toInt(r.props.get('getcontentlength')) ?? 0;
    const mtimeMs = toDate(r.props.get('getlastmodified')) ?? 0;
    const birthtimeMs = toDate(r.props.get('creationdate')) ?? mtimeMs;
    const etag = r.props.get('getetag');
    const strong = etag ? stripWeak(etag) : '';
    const base = /^"[^"]*"$/.test(strong) ? `${strong}:${mtimeMs}:${size}` : `lastmodified:${mtimeMs}:${size}`;
    return { name: nameOf(path), path, kind, size, mtimeMs, birthtimeMs, validator: this.#withGen(path, base) };
  }

  /** The server's validator, with the generation suffix when a same-second rewrite is remembered. */
  #withGen(path: string, base: string): string {
    const gen = this.#gens.get(path)?.get(base);
    return gen ? `${base}:g${gen}` : base;
  }

  /**
   * After this instance replaced the content at `path` (PUT, MOVE or COPY onto it): when the
   * server reports a validator this path already had (`previous`, or one remembered), count one
   * more generation, so that the cache never takes the new content for an old one.
   */
  async #replaced(path: string, previous: Entry | null, ctx: CallContext | undefined): Promise<Entry> {
    const now = await this.stat(path, ctx);
    const base = splitGen(now.validator).base;
    const prev = previous ? splitGen(previous.validator) : undefined;
    let gen = this.#gens.get(path)?.get(base) ?? -1;
    if (prev && prev.base === base) gen = Math.max(gen, prev.gen);
    gen += 1;
    this.#remember(path, base, gen);
    return gen > 0 ? { ...now, validator: `${base}:g${gen}` } : now;
  }

  #remember(path: string, base: string, gen: number): void {
    const bases = this.#gens.get(path) ?? new Map<string, number>();
    this.#gens.delete(path); // most recently used last
    this.#gens.set(path, bases);
    bases.delete(base);
    bases.set(base, gen);
    if (bases.size > 16) {
      const oldest = bases.keys().next().value;
      if (oldest !== undefined) bases.delete(oldest);
    }
    if (this.#gens.size > MAX_GENERATIONS) {
      const oldest = this.#gens.keys().next().value;
      if (oldest !== undefined) this.#gens.delete(oldest);
    }
  }

  /** PROPFIND with a streamed multistatus answer; 404 → NotFoundError. A redirect is followed once, to the collection form. */
  async #propfind(path: string, depth: '0' | '1', body: string, ctx: CallContext | undefined): Promise<Dispatcher.ResponseData> {
    const headers = { depth, 'content-type': 'application/xml; charset=utf-8' };
    let res = await this.#request('PROPFIND', this.#target(path), ctx, headers, body);
    if (path !== '/' && [301, 302, 307, 308].includes(res.statusCode)) {
      await drain(res);
      res = await this.#request('PROPFIND', this.#target(path, true), ctx, headers, body);
    }
    if (res.statusCode === 400 && path !== '/') {
      // Apache answers 400 to a path below a file ("/file/x"): that path does not exist.
      await drain(res);
      const parent = await this.#statOrNull(parentOf(path), ctx);
      if (!parent || parent.kind !== 'dir') throw new NotFoundError(path);
      throw statusError(400, 'PROPFIND', path);
    }
    if (res.statusCode !== 207) await this.#fail(res, 'PROPFIND', path);
    return res;
  }

  /** All responses of a small multistatus (Depth 0). */
  async #propfindAll(path: string, body: string, ctx: CallContext | undefined): Promise<DavResponse[]> {
    const res = await this.#propfind(path, '0', body, ctx);
    const parser = new MultiStatusParser();
    const decoder = new StringDecoder('utf8');
    const out: DavResponse[] = [];
    try {
      for await (const chunk of res.body) {
        parser.write(decoder.write(chunk as Buffer));
        out.push(...parser.take());
      }
      parser.write(decoder.end());
      parser.close();
      out.push(...parser.take());
    } catch (e) {
      discard(res);
      throw transportError(e, 'PROPFIND');
    }
    return out;
  }

  async #statOrNull(path: string, ctx: CallContext | undefined): Promise<Entry | null> {
    try {
      return await this.stat(path, ctx);
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
  }

  // ----- Upstream ------------------------------------------------------------------------------

  async stat(path: string, ctx?: CallContext): Promise<Entry> {
    this.#check(path);
    const all = await this.#propfindAll(path, STAT_BODY, ctx);
    // Depth 0 answers for the path itself; tolerate servers that add more, or another href form.
    const own = all.find((r) => this.#pathOfHref(r.href) === path) ?? all[0];
    const entry = own ? this.#entry(path, own) : null;
    if (!entry) throw new NotFoundError(path);
    return entry;
  }

  async *list(path: string, ctx?: CallContext): AsyncIterable<Entry> {
    this.#check(path);
    const res = await this.#propfind(path, '1', STAT_BODY, ctx);
    const parser = new MultiStatusParser();
    const decoder = new StringDecoder('utf8');
    const self = path.normalize('NFC');
    const convert = (responses: DavResponse[]): Entry[] => {
      const out: Entry[] = [];
      for (const r of responses) {
        const p = this.#pathOfHref(r.href);
        if (p === null) continue;
        if (p.normalize('NFC') === self) {
          if (this.#entry(path, r)?.kind === 'file') throw new NotADirectoryError();
          continue; // the collection itself
        }
        // Only direct children, named as the server names them.
        if (p === '/' || parentOf(p).normalize('NFC') !== self) continue;
        const e = this.#entry(joinPath(path, nameOf(p)), r);
        if (e) out.push(e);
      }
      return out;
    };
    try {
      for await (const chunk of res.body) {
        parser.write(decoder.write(chunk as Buffer));
        const entries = convert(parser.take());
        if (entries.length) yield* entries;
      }
      parser.write(decoder.end());
      parser.close();
      yield* convert(parser.take());
    } catch (e) {
      throw transportError(e, 'PROPFIND');
    } finally {
      // A consumer that stops early (or an error) must not leave the rest of a huge body queued.
      discard(res);
    }
  }

  async read(path: string, offset: number, length: number, expectValidator?: string, ctx?: CallContext): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new BadRequestError('invalid byte range', 'DAVGATE_BAD_RANGE');
    }
    this.#check(path);
    if (path === '/') throw new IsADirectoryError();
    let expect: Expect | undefined;
    const changed = () => new PreconditionFailedError(`${path} changed upstream`);
    /** Is the validator still the current one? (A PROPFIND, for the cases a GET cannot answer.) */
    const stillCurrent = async () => (await this.stat(path, ctx)).validator === expectValidator;
    if (expectValidator !== undefined) {
      const parsed = parseValidator(expectValidator);
      if (parsed) expect = parsed;
      else if (!(await stillCurrent())) throw changed();
      const { base, gen } = splitGen(expectValidator);
      const known = this.#gens.get(path)?.get(base);
      if (known !== undefined && known !== gen) throw changed(); // rewritten within the same second
    }
    if (length === 0) return Buffer.alloc(0);

    const get = (conditional: boolean) => {
      const h: Record<string, string> = { range: `bytes=${offset}-${offset + length - 1}`, 'accept-encoding': 'identity' };
      if (conditional && expect?.etag) h['if-match'] = expect.etag;
      else if (conditional && expect?.mtimeMs) h['if-unmodified-since'] = new Date(expect.mtimeMs).toUTCString();
      return this.#request('GET', this.#target(path), ctx, h);
    };
    let res = await get(true);
    if (res.statusCode === 412 && expect?.etag) {
      // Apache never matches If-Match while the ETag is weak (file modified within the last
      // second). If PROPFIND still reports this version, ask again unconditionally and let
      // the response check below decide.
      await drain(res);
      if (!(await stillCurrent())) throw changed();
      res = await get(false);
    }
    const status = res.statusCode;
    if (status === 416) {
      // Past the end, of this version or of another one? (Apache's 416 has no Content-Range.)
      const { total } = contentRange(header(res.headers, 'content-range'));
      await drain(res);
      if (expect && (total !== undefined ? total !== expect.size : !(await stillCurrent()))) throw changed();
      return Buffer.alloc(0);
    }
    if (status === 412) {
      await drain(res);
      throw changed();
    }
    if (status !== 200 && status !== 206) {
      if ([301, 302, 307, 308, 400, 403, 404, 405].includes(status)) {
        // A collection (nginx redirects to "dir/", Apache answers 404 without mod_dir)?
        await drain(res);
        const e = await this.#statOrNull(path, ctx);
        if (!e) throw new NotFoundError(path);
        if (e.kind === 'dir') throw new IsADirectoryError();
        throw statusError(status, 'GET', path);
      }
      await this.#fail(res, 'GET', path);
    }

    // Which bytes came back: a 206 from `start`, or (server ignoring Range) the whole file.
    let skip: number;
    let total: number | undefined;
    if (status === 206) {
      const cr = contentRange(header(res.headers, 'content-range'));
      total = cr.total;
      if (cr.start === undefined || cr.start > offset) {
        discard(res);
        throw new UpstreamUnavailableError(`WebDAV upstream sent an unusable range for ${path}`);
      }
      skip = offset - cr.start;
    } else {
      total = toInt(header(res.headers, 'content-length'));
      skip = offset;
    }
    if (expect && !this.#sameVersion(expect, res.headers, total)) {
      discard(res);
      throw changed();
    }
    const chunks: Buffer[] = [];
    let got = 0;
    try {
      for await (const c of res.body) {
        let b = c as Buffer;
        if (skip > 0) {
          if (b.length <= skip) { skip -= b.length; continue; }
          b = b.subarray(skip);
          skip = 0;
        }
        if (got + b.length > length) b = b.subarray(0, length - got);
        chunks.push(b);
        got += b.length;
        if (got >= length) break; // leaving the loop destroys the rest of a full (200) body
      }
    } catch (e) {
      throw transportError(e, 'GET');
    } finally {
      discard(res);
    }
    return chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, got);
  }

  /** Does a GET response describe the version the validator names? */
  #sameVersion(expect: Expect, headers: Dispatcher.ResponseData['headers'], total: number | undefined): boolean {
    if (expect.size !== undefined && total !== undefined && total !== expect.size) return false;
    if (expect.etag) {
      const etag = header(headers, 'etag');
      return etag === undefined || stripWeak(etag) === expect.etag;
    }
    const lm = toDate(header(headers, 'last-modified'));
    return lm === undefined || expect.mtimeMs === undefined || lm === expect.mtimeMs;
  }

  /** Parent must be an existing collection: ConflictError otherwise. */
  async #requireParent(path: string, ctx: CallContext | undefined): Promise<void> {
    const parent = parentOf(path);
    const p = await this.#statOrNull(parent, ctx);
    if (!p || p.kind !== 'dir') throw new ConflictError(`parent collection of ${path} does not exist`);
  }

  async write(path: string, body: Readable, size?: number, ctx?: CallContext): Promise<Entry> {
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) throw new BadRequestError('invalid size');
    this.#check(path);
    if (path === '/') throw new IsADirectoryError();
    // nginx answers 500 to a PUT below a missing collection, hence the explicit check.
    const [, existing] = await Promise.all([this.#requireParent(path, ctx), this.#statOrNull(path, ctx)]);
    if (existing?.kind === 'dir') throw new IsADirectoryError();

    const checked = new SizeCheck(size);
    let bodyErr: unknown;
    // An error or a premature close of `body` destroys `checked`, and undici then destroys the
    // upstream request, so the server never completes the PUT. `body` itself is only unpiped on
    // our own failures, never destroyed: the caller still owns the client's request stream.
    const onError = (e: unknown) => { bodyErr ??= e; checked.destroy(e as Error); };
    const onClose = () => { if (!body.readableEnded) checked.destroy(new IncompleteBodyError('request body aborted')); };
    body.once('error', onError);
    body.once('close', onClose);
    body.pipe(checked);
    const release = () => {
      body.off('error', onError);
      body.off('close', onClose);
      body.unpipe(checked);
      if (!checked.destroyed) checked.destroy();
    };
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (size !== undefined) headers['content-length'] = String(size);
    let res: Dispatcher.ResponseData;
    try {
      res = await this.#pool.request({
        origin: this.#origin, path: this.#target(path), method: 'PUT', headers: this.#headers(ctx, headers), body: checked,
        headersTimeout: this.#timeout, bodyTimeout: this.#timeout,
      });
    } catch (e) {
      release();
      if (bodyErr !== undefined) throw bodyErr; // the client's abort, as the contract allows
      if (e instanceof DavgateError) throw e;
      if ((e as { code?: string })?.code === 'ERR_STREAM_PREMATURE_CLOSE') throw new IncompleteBodyError('request body aborted');
      throw transportError(e, 'PUT');
    }
    release();
    if (res.statusCode < 200 || res.statusCode >= 300) {
      if (res.statusCode === 405) { // a collection appeared meanwhile
        await drain(res);
        throw new IsADirectoryError();
      }
      await this.#fail(res, 'PUT', path);
    }
    await drain(res);
    return this.#replaced(path, existing, ctx);
  }

  async mkdir(path: string, ctx?: CallContext): Promise<void> {
    this.#check(path);
    if (path === '/') throw new ExistsError();
    const res = await this.#request('MKCOL', this.#target(path, true), ctx);
    if (res.statusCode >= 200 && res.statusCode < 300) return void (await drain(res));
    if (res.statusCode === 405) {
      await drain(res);
      throw new ExistsError(`${path} already exists`);
    }
    if (res.statusCode === 400 || res.statusCode === 409) {
      // Apache answers 400 to "MKCOL file/" for an existing file and to "MKCOL file/sub/";
      // 409 is a missing parent.
      await drain(res);
      if (await this.#statOrNull(path, ctx)) throw new ExistsError(`${path} already exists`);
      const parent = await this.#statOrNull(parentOf(path), ctx);
      if (res.statusCode === 409 || !parent || parent.kind !== 'dir') throw new ConflictError(`parent collection of ${path} does not exist`);
      throw statusError(res.statusCode, 'MKCOL', path);
    }
    await this.#fail(res, 'MKCOL', path);
  }

  async remove(path: string, ctx?: CallContext): Promise<void> {
    this.#check(path);
    if (path === '/') throw new ForbiddenPathError('the root cannot be removed');
    const entry = await this.stat(path, ctx);
    const dir = entry.kind === 'dir';
    const res = await this.#request('DELETE', this.#target(path, dir), ctx, dir ? { depth: 'infinity' } : {});
    await this.#done(res, 'DELETE', path);
  }

  /** 2xx is success; a 207 multistatus is the failure of some member. */
  async #done(res: Dispatcher.ResponseData, op: Method, path: string): Promise<void> {
    if (res.statusCode === 207) {
      const text = await smallText(res).catch(() => '');
      const parser = new MultiStatusParser();
      let failed: { status: number; path: string } | undefined;
      try {
        parser.write(text);
        parser.close();
        for (const r of parser.take()) {
          if (r.status !== undefined && (r.status < 200 || r.status >= 300)) {
            failed = { status: r.status, path: this.#pathOfHref(r.href) ?? path };
            break;
          }
        }
      } catch { /* malformed: reported below */ }
      if (failed) throw statusError(failed.status, op, failed.path);
      throw new UpstreamUnavailableError(`WebDAV upstream reported a partial failure of ${op} ${path}`);
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return void (await drain(res));
    await this.#fail(res, op, path);
  }

  /**
   * Shared checks of move and copy, made here rather than left to the server: nginx moves a
   * collection into itself recursively (and loses it), creates a missing destination parent
   * on MOVE of a file, and refuses to replace a collection by a file.
   */
  async #prepare(from: string, to: string, overwrite: boolean, ctx: CallContext | undefined): Promise<{ source: Entry; dest: Entry | null }> {
    this.#check(from);
    this.#check(to);
    if (from === '/' || to === '/') throw new ForbiddenPathError('the root cannot be moved, copied or replaced');
    if (from === to) throw new ForbiddenPathError('source and destination are the same');
    if (isWithin(to, from)) throw new ConflictError('destination lies inside the source');
    const [source, , dest] = await Promise.all([
      this.stat(from, ctx),
      this.#requireParent(to, ctx),
      this.#statOrNull(to, ctx),
    ]);
    if (dest) {
      if (!overwrite) throw new ExistsError(`${to} already exists`);
      // A file replaces a file in one step on the server; anything involving a collection is
      // removed first (the contract: "a directory destination is removed first").
      if (dest.kind === 'dir' || source.kind === 'dir') await this.remove(to, ctx);
    }
    return { source, dest };
  }

  /** After a file landed on `to`: keep validators distinct from what was there before. */
  async #landed(to: string, dest: Entry | null, carried: Map<string, number> | undefined, ctx: CallContext | undefined): Promise<void> {
    if (dest?.kind === 'file' || this.#gens.has(to)) {
      await this.#replaced(to, dest?.kind === 'file' ? dest : null, ctx);
    } else if (carried) {
      for (const [base, gen] of carried) this.#remember(to, base, gen); // a moved file keeps its validator
    }
  }

  async #transfer(op: 'MOVE' | 'COPY', from: string, to: string, dir: boolean, overwrite: boolean, depth: string, ctx: CallContext | undefined): Promise<void> {
    const res = await this.#request(op, this.#target(from, dir), ctx, {
      destination: this.#origin + this.#target(to, dir),
      overwrite: overwrite ? 'T' : 'F',
      depth,
    });
    if (res.statusCode === 412 && !overwrite) {
      await drain(res);
      throw new ExistsError(`${to} already exists`);
    }
    if (res.statusCode === 404) {
      await drain(res);
      throw new NotFoundError(from);
    }
    await this.#done(res, op, from);
  }

  async move(from: string, to: string, overwrite: boolean, ctx?: CallContext): Promise<void> {
    const { source, dest } = await this.#prepare(from, to, overwrite, ctx);
    await this.#transfer('MOVE', from, to, source.kind === 'dir', overwrite, 'infinity', ctx);
    if (source.kind === 'file') {
      const carried = this.#gens.get(from);
      this.#gens.delete(from);
      await this.#landed(to, dest, carried, ctx);
    }
  }

  async copy(from: string, to: string, overwrite: boolean, shallow = false, ctx?: CallContext): Promise<void> {
    const { source, dest } = await this.#prepare(from, to, overwrite, ctx);
    if (source.kind === 'dir' && shallow) {
      // nginx ignores "Depth: 0" on COPY and copies the whole tree: a shallow copy of a
      // collection is a new, empty collection.
      await this.mkdir(to, ctx);
      return;
    }
    await this.#transfer('COPY', from, to, source.kind === 'dir', overwrite, shallow ? '0' : 'infinity', ctx);
    if (source.kind === 'file') await this.#landed(to, dest, undefined, ctx);
  }

  async quota(path: string, ctx?: CallContext): Promise<Quota> {
    this.#check(path);
    // RFC 4331 properties where the server has them (Apache and nginx here do not).
    let available: number | undefined;
    let used: number | undefined;
    try {
      const [own] = await this.#propfindAll(path, QUOTA_BODY, ctx);
      available = toInt(own?.props.get('quota-available-bytes'));
      used = toInt(own?.props.get('quota-used-bytes'));
    } catch (e) {
      if (this.#quotaBytes === undefined) throw e;
    }
    if (this.#quotaBytes !== undefined) {
      return { availableBytes: available !== undefined ? Math.min(available, this.#quotaBytes) : this.#quotaBytes, usedBytes: used ?? 0 };
    }
    if (available === undefined) throw new UnsupportedError('quota');
    return { availableBytes: available, usedBytes: used ?? 0 };
  }

  async close(): Promise<void> {
    await this.#pool.close().catch(() => this.#pool.destroy());
  }
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

function toInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^\s*\d+\s*$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

function toDate(v: string | undefined): number | undefined {
  if (!v) return undefined;
  const t = Date.parse(v);
  return Number.isFinite(t) ? t : undefined;
}

/** The one status → error table of this backend. Messages carry the method, path and status only. */
function statusError(status: number, op: Method, path: string): DavgateError {
  switch (status) {
    case 400: return new BadRequestError(`WebDAV upstream refused ${op} ${path} (400)`);
    case 401: return new UnauthorizedError();
    case 403: return new DavgateError('DAVGATE_FORBIDDEN_PATH', `WebDAV upstream forbids ${op} ${path}`);
    case 404: case 410: return new NotFoundError(path);
    case 405: return new UnsupportedError(`${op} on ${path}`);
    case 409: return new ConflictError(`WebDAV upstream: conflict on ${op} ${path}`);
    case 412: return new PreconditionFailedError(`WebDAV upstream: precondition failed on ${op} ${path}`);
    case 413: return new DavgateError('DAVGATE_BODY_TOO_LARGE', `WebDAV upstream refused a body this large for ${path}`);
    case 414: return new DavgateError('DAVGATE_NAME_TOO_LONG', `path too long for the WebDAV upstream: ${path}`);
    case 423: return new DavgateError('DAVGATE_LOCKED', `${path} is locked on the WebDAV upstream`);
    case 504: return new DavgateError('DAVGATE_UPSTREAM_TIMEOUT', `WebDAV upstream timed out (${op} ${path}, 504)`);
    case 507: return new InsufficientStorageError();
    default:
      return new UpstreamUnavailableError(`WebDAV upstream answered ${status} to ${op} ${path}`);
  }
}
