import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import {
  ConflictError, ExistsError, ForbiddenPathError, IsADirectoryError, NotADirectoryError, NotFoundError, PreconditionFailedError, UpstreamUnavailableError,
} from '../../errors.js';
import { joinPath, nameOf, parentOf } from '../../davpath.js';
import type { CallContext, CopyOptions, Entry, MoveOptions, Quota, ReadOptions, Upstream, WriteOptions } from '../types.js';
import { statusError, transportError } from './errors.js';
import { checkPath, parseBaseUrl, type BaseUrl } from './href.js';
import { DavClient, discard, drain, fail, smallText, type Method } from './http.js';
import { firstFailure, multistatusBatches, QUOTA_BODY, STAT_BODY, type DavResponse } from './multistatus.js';
import { getRange } from './range.js';
import { putBody } from './write.js';
import { checkRange, checkSize, checkTransfer } from '../checks.js';
import { entryOf, Generations, parseValidator, splitGen, toInt, type Expect, type Remembered } from './validators.js';

// Another WebDAV server (nginx + dav-ext, Apache mod_dav, rclone serve webdav, Nextcloud, ...)
// as the upstream, spoken to with undici over a bounded keep-alive pool (./http.ts).
// Paths and hrefs: ./href.ts. The form of validators, and generations: ./validators.ts.
//
// Reads (./range.ts) are conditional (If-Match with the strong form, or If-Unmodified-Since),
// and every response is checked again against the validator (ETag, Last-Modified, total size),
// so a block is never cut from another version of a file. Apache answers If-Match with 412
// while its ETag is still weak: when a PROPFIND shows the version is still current, the read
// is repeated unconditionally and the response check decides.
//
// Writes (./write.ts): PUT streams the body; the server's PUT is what makes a write atomic, and
// both nginx (client_body_temp_path, then rename) and Apache mod_dav_fs (a temporary file beside
// the target, then rename) write a complete body to a temporary file and rename it into place.
// A body that errors, ends short of or runs past `size` destroys the upstream request, so the
// server sees a truncated body and discards it: nothing is ever committed short.
//
// Credentials: see ./http.ts; neither `id` nor any error message contains the password.

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

export class WebDavUpstream implements Upstream {
  readonly id: string;
  /** Only with `quotaBytes` configured (see #quota). */
  readonly quota?: (path: string, ctx?: CallContext) => Promise<Quota>;
  readonly #base: BaseUrl;
  readonly #http: DavClient;
  readonly #gens = new Generations();

  constructor(opts: WebDavUpstreamOptions) {
    const { base, username, password } = parseBaseUrl(opts.url);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#base = base;
    this.id = 'webdav:' + base.url.href;
    const quotaBytes = opts.quotaBytes;
    if (quotaBytes !== undefined) this.quota = (path, ctx) => this.#quota(path, quotaBytes, ctx);
    this.#http = new DavClient({
      origin: base.origin,
      username: opts.username ?? username,
      password: opts.password ?? password,
      passThroughAuth: opts.passThroughAuth === true,
      timeoutMs,
      connections: opts.connections ?? DEFAULT_CONNECTIONS,
    });
  }

  /** Never let the credentials show up in a console.log/inspect of the object. */
  toJSON(): object { return { id: this.id }; }
  [Symbol.for('nodejs.util.inspect.custom')](): string { return `WebDavUpstream(${this.id})`; }

  // ----- plumbing ------------------------------------------------------------------------------

  /** After this instance replaced the content at `path` (PUT, MOVE or COPY onto it): see Generations.replaced. */
  async #replaced(path: string, previous: Entry | null, ctx: CallContext | undefined): Promise<Entry> {
    return this.#gens.replaced(path, previous, await this.stat(path, ctx));
  }

  /** PROPFIND with a streamed multistatus answer; 404 → NotFoundError. A redirect is followed once, to the collection form. */
  async #propfind(path: string, depth: '0' | '1', body: string, ctx: CallContext | undefined): Promise<Dispatcher.ResponseData> {
    const headers = { depth, 'content-type': 'application/xml; charset=utf-8' };
    let res = await this.#http.request('PROPFIND', this.#base.target(path), ctx, headers, body);
    if (path !== '/' && [301, 302, 307, 308].includes(res.statusCode)) {
      await drain(res);
      res = await this.#http.request('PROPFIND', this.#base.target(path, true), ctx, headers, body);
    }
    if (res.statusCode === 400 && path !== '/') {
      // Apache answers 400 to a path below a file ("/file/x"): that path does not exist.
      await drain(res);
      const parent = await this.#statOrNull(parentOf(path), ctx);
      if (!parent || parent.kind !== 'dir') throw new NotFoundError(path);
      throw statusError(400, 'PROPFIND', path);
    }
    if (res.statusCode !== 207) await fail(res, 'PROPFIND', path);
    return res;
  }

  /** All responses of a small multistatus (Depth 0). */
  async #propfindAll(path: string, body: string, ctx: CallContext | undefined): Promise<DavResponse[]> {
    const res = await this.#propfind(path, '0', body, ctx);
    const out: DavResponse[] = [];
    try {
      for await (const batch of multistatusBatches(res.body)) out.push(...batch);
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
    checkPath(path);
    const all = await this.#propfindAll(path, STAT_BODY, ctx);
    // Depth 0 answers for the path itself; tolerate servers that add more, or another href form.
    const own = all.find((r) => this.#base.pathOfHref(r.href) === path) ?? all[0];
    const entry = own ? entryOf(path, own, this.#gens) : null;
    if (!entry) throw new NotFoundError(path);
    return entry;
  }

  async *list(path: string, ctx?: CallContext): AsyncIterable<Entry> {
    checkPath(path);
    const res = await this.#propfind(path, '1', STAT_BODY, ctx);
    const self = path.normalize('NFC');
    const convert = (responses: DavResponse[]): Entry[] => {
      const out: Entry[] = [];
      for (const r of responses) {
        const p = this.#base.pathOfHref(r.href);
        if (p === null) continue;
        if (p.normalize('NFC') === self) {
          if (entryOf(path, r, this.#gens)?.kind === 'file') throw new NotADirectoryError();
          continue; // the collection itself
        }
        // Only direct children, named as the server names them.
        if (p === '/' || parentOf(p).normalize('NFC') !== self) continue;
        const e = entryOf(joinPath(path, nameOf(p)), r, this.#gens);
        if (e) out.push(e);
      }
      return out;
    };
    try {
      for await (const batch of multistatusBatches(res.body)) {
        const entries = convert(batch);
        if (entries.length) yield* entries;
      }
    } catch (e) {
      throw transportError(e, 'PROPFIND');
    } finally {
      // A consumer that stops early (or an error) must not leave the rest of a huge body queued.
      discard(res);
    }
  }

  async read(path: string, { offset, length, expectValidator, sink }: ReadOptions, ctx?: CallContext): Promise<Buffer> {
    checkRange(offset, length);
    checkPath(path);
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
      const known = this.#gens.of(path, base);
      if (known !== undefined && known !== gen) throw changed(); // rewritten within the same second
    }
    if (length === 0) return Buffer.alloc(0);
    return getRange({
      http: this.#http, target: this.#base.target(path), ctx, path, offset, length, expect, sink,
      changed, stillCurrent, statOrNull: () => this.#statOrNull(path, ctx),
    });
  }

  /** Parent must be an existing collection: ConflictError otherwise. */
  async #requireParent(path: string, ctx: CallContext | undefined): Promise<void> {
    const parent = parentOf(path);
    const p = await this.#statOrNull(parent, ctx);
    if (!p || p.kind !== 'dir') throw new ConflictError(`parent collection of ${path} does not exist`);
  }

  async write(path: string, body: Readable, { size }: WriteOptions = {}, ctx?: CallContext): Promise<Entry> {
    checkSize(size);
    checkPath(path);
    if (path === '/') throw new IsADirectoryError();
    // nginx answers 500 to a PUT below a missing collection, hence the explicit check.
    const [, existing] = await Promise.all([this.#requireParent(path, ctx), this.#statOrNull(path, ctx)]);
    if (existing?.kind === 'dir') throw new IsADirectoryError();

    const res = await putBody(this.#http, this.#base.target(path), ctx, body, size);
    if (res.statusCode < 200 || res.statusCode >= 300) {
      if (res.statusCode === 405) { // a collection appeared meanwhile
        await drain(res);
        throw new IsADirectoryError();
      }
      await fail(res, 'PUT', path);
    }
    await drain(res);
    return this.#replaced(path, existing, ctx);
  }

  async mkdir(path: string, ctx?: CallContext): Promise<void> {
    checkPath(path);
    if (path === '/') throw new ExistsError();
    const res = await this.#http.request('MKCOL', this.#base.target(path, true), ctx);
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
    await fail(res, 'MKCOL', path);
  }

  async remove(path: string, ctx?: CallContext): Promise<void> {
    checkPath(path);
    if (path === '/') throw new ForbiddenPathError('the root cannot be removed');
    const entry = await this.stat(path, ctx);
    const dir = entry.kind === 'dir';
    const res = await this.#http.request('DELETE', this.#base.target(path, dir), ctx, dir ? { depth: 'infinity' } : {});
    await this.#done(res, 'DELETE', path);
  }

  /** 2xx is success; a 207 multistatus is the failure of some member. */
  async #done(res: Dispatcher.ResponseData, op: Method, path: string): Promise<void> {
    if (res.statusCode === 207) {
      const failed = firstFailure(await smallText(res).catch(() => ''));
      if (failed) throw statusError(failed.status, op, this.#base.pathOfHref(failed.href) ?? path);
      throw new UpstreamUnavailableError(`WebDAV upstream reported a partial failure of ${op} ${path}`);
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return void (await drain(res));
    await fail(res, op, path);
  }

  /**
   * Shared checks of move and copy, made here rather than left to the server: nginx moves a
   * collection into itself recursively (and loses it), creates a missing destination parent
   * on MOVE of a file, and refuses to replace a collection by a file.
   */
  async #prepare(from: string, to: string, overwrite: boolean, ctx: CallContext | undefined): Promise<{ source: Entry; dest: Entry | null }> {
    checkPath(from);
    checkPath(to);
    checkTransfer(from, to);
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
  async #landed(to: string, dest: Entry | null, carried: Remembered | undefined, ctx: CallContext | undefined): Promise<void> {
    if (dest?.kind === 'file' || this.#gens.has(to)) {
      await this.#replaced(to, dest?.kind === 'file' ? dest : null, ctx);
    } else if (carried) {
      for (const [base, gen] of carried) this.#gens.remember(to, base, gen); // a moved file keeps its validator
    }
  }

  async #transfer(op: 'MOVE' | 'COPY', from: string, to: string, dir: boolean, overwrite: boolean, depth: string, ctx: CallContext | undefined): Promise<void> {
    const res = await this.#http.request(op, this.#base.target(from, dir), ctx, {
      destination: this.#base.origin + this.#base.target(to, dir),
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

  async move(from: string, to: string, { overwrite }: MoveOptions, ctx?: CallContext): Promise<void> {
    const { source, dest } = await this.#prepare(from, to, overwrite, ctx);
    await this.#transfer('MOVE', from, to, source.kind === 'dir', overwrite, 'infinity', ctx);
    if (source.kind === 'file') {
      const carried = this.#gens.take(from);
      await this.#landed(to, dest, carried, ctx);
    }
  }

  async copy(from: string, to: string, { overwrite, shallow = false }: CopyOptions, ctx?: CallContext): Promise<void> {
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

  /**
   * The configured `quotaBytes`, capped by the server's own RFC 4331 figure where it has one
   * (Apache and nginx here do not); a server that cannot answer leaves the configured figure.
   */
  async #quota(path: string, quotaBytes: number, ctx: CallContext | undefined): Promise<Quota> {
    checkPath(path);
    let available: number | undefined;
    let used: number | undefined;
    try {
      const [own] = await this.#propfindAll(path, QUOTA_BODY, ctx);
      available = toInt(own?.props.get('quota-available-bytes'));
      used = toInt(own?.props.get('quota-used-bytes'));
    } catch {
      // the configured figure stands
    }
    return { availableBytes: available !== undefined ? Math.min(available, quotaBytes) : quotaBytes, usedBytes: used ?? 0 };
  }

  async close(): Promise<void> {
    await this.#http.close();
  }
}
