import net from 'node:net';

// Ranged GETs (WebDAV and S3 block reads) over plain-HTTP keep-alive sockets whose bodies are read straight into the
// caller's buffer (net.Socket `onread`): no allocation and no copy per socket read. From a
// fresh process undici reads the same nginx at about half this speed, and its per-read
// buffers make V8 run a full collection every ~40 ms of a cold read. Only the common answer is
// taken here (see `accept`); for anything else the socket is dropped and the caller asks again
// through undici, which handles every other case.

const MAX_HEAD = 16 * 1024;
const IDLE_MS = 4_000;

/** Status and lower-cased headers (the first of repeated ones) of a response. */
export interface Head { status: number; headers: Record<string, string> }

export interface DirectResult {
  /** False: the head was not accepted (nothing written to `into`), ask another way. */
  taken: boolean;
  head: Head;
  /** Body bytes now in `into`. */
  got: number;
}

/** The request this connection is serving. */
interface Active {
  into: Buffer;
  accept: (head: Head) => boolean;
  progress: (filled: number) => void;
  resolve: (r: DirectResult) => void;
  reject: (e: Error) => void;
  headLen: number;
  head?: Head;
  bodyLen: number;
  got: number;
  /** Some response byte arrived (a failure before that, on a reused socket, is retried). */
  answered: boolean;
}

class Connection {
  readonly socket: net.Socket;
  readonly #headBuf = Buffer.allocUnsafe(MAX_HEAD);
  #active: Active | undefined;
  #reusable = true;
  onIdle: (c: Connection) => void = () => {};
  onGone: (c: Connection) => void = () => {};

  constructor(host: string, port: number, readonly timeoutMs: number) {
    this.socket = net.connect({
      host, port, noDelay: true,
      onread: { buffer: () => this.#nextBuffer(), callback: (n) => this.#onRead(n) },
    });
    this.socket.setTimeout(timeoutMs, () => this.socket.destroy(Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' })));
    let error: Error | undefined;
    this.socket.on('error', (e) => { error = e; }); // reported through 'close' to the active request
    this.socket.on('close', () => this.#fail(error ?? Object.assign(new Error('connection closed by the upstream'), { code: 'ECONNRESET' })));
  }

  get busy(): boolean { return this.#active !== undefined; }

  send(request: string, active: Active): void {
    this.#active = active;
    this.socket.ref();
    this.socket.setTimeout(this.timeoutMs);
    this.socket.write(request, 'latin1');
  }

  #nextBuffer(): Buffer {
    const a = this.#active;
    if (a?.head) return a.into.subarray(a.got, a.bodyLen);
    return this.#headBuf.subarray(a ? a.headLen : 0);
  }

  #onRead(n: number): boolean {
    const a = this.#active;
    if (!a) { this.socket.destroy(); return false; } // bytes nobody asked for: not HTTP as we know it
    a.answered = true;
    if (a.head) {
      a.got += n;
    } else {
      a.headLen += n;
      const end = this.#headBuf.subarray(0, a.headLen).indexOf('\r\n\r\n', 0, 'latin1');
      if (end < 0) {
        if (a.headLen >= MAX_HEAD) this.#refuse({ status: 0, headers: {} });
        return true;
      }
      const head = parseHead(this.#headBuf.toString('latin1', 0, end));
      const len = head.headers['content-length'];
      const bodyLen = len !== undefined && /^\d+$/.test(len) ? Number(len) : -1;
      const extra = a.headLen - end - 4;
      if (bodyLen < 0 || bodyLen > a.into.length || head.headers['transfer-encoding'] !== undefined
        || extra > bodyLen || !a.accept(head)) {
        this.#refuse(head);
        return true;
      }
      a.head = head;
      a.bodyLen = bodyLen;
      this.#headBuf.copy(a.into, 0, end + 4, a.headLen);
      a.got = extra;
      this.#reusable = !/\bclose\b/i.test(head.headers.connection ?? '');
    }
    if (a.got > 0) a.progress(a.got);
    if (a.got >= a.bodyLen) this.#finish({ taken: true, head: a.head, got: a.got });
    return true;
  }

  #refuse(head: Head): void {
    const a = this.#active!;
    this.#active = undefined;
    this.socket.destroy(); // the body's framing is not ours to follow
    a.resolve({ taken: false, head, got: 0 });
  }

  #finish(r: DirectResult): void {
    const a = this.#active!;
    this.#active = undefined;
    if (this.#reusable) {
      this.socket.setTimeout(IDLE_MS);
      this.socket.unref(); // an idle keep-alive socket does not keep the process alive
      this.onIdle(this);
    } else {
      this.socket.destroy();
    }
    a.resolve(r);
  }

  #fail(err: Error): void {
    this.onGone(this);
    const a = this.#active;
    this.#active = undefined;
    a?.reject(Object.assign(err, { answered: a.answered }));
  }
}

function parseHead(text: string): Head {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    headers[name] ??= line.slice(i + 1).trim();
  }
  return { status: m ? Number(m[1]) : 0, headers };
}

const UNSAFE = /[\r\n\0]/;

/** "bytes a-b/total" or "bytes * /total" → {start, total}. */
export function contentRange(value: string | undefined): { start?: number; total?: number } {
  const m = /^\s*bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)\s*$/i.exec(value ?? '');
  if (!m) return {};
  return { start: m[1] !== undefined ? Number(m[1]) : undefined, total: m[2] !== undefined && m[2] !== '*' ? Number(m[2]) : undefined };
}

export class DirectRanges {
  readonly #idle: Connection[] = [];
  #closed = false;
  /** The server answered a range request with the whole file: each direct GET would cost a second request. */
  #ignoresRange = false;

  /** For a plain-HTTP origin; undefined for any other (HTTPS: the caller's own client reads). */
  static forOrigin(origin: URL, timeoutMs: number, maxIdle: number): DirectRanges | undefined {
    if (origin.protocol !== 'http:') return undefined;
    return new DirectRanges(origin.hostname.replace(/^\[|\]$/g, ''), Number(origin.port || 80), origin.host, timeoutMs, maxIdle);
  }

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly hostHeader: string,
    private readonly timeoutMs: number,
    private readonly maxIdle: number,
  ) {}

  /**
   * GET `target`; when `accept(head)` takes the head, the body (at most `into.length` bytes,
   * announced with `progress`) is read into `into`. A request on a kept-alive socket that the
   * server had closed meanwhile is sent again once, on a new socket.
   */
  async get(target: string, headers: Record<string, string>, into: Buffer, accept: (head: Head) => boolean, progress: (filled: number) => void): Promise<DirectResult> {
    let text = `GET ${target} HTTP/1.1\r\nhost: ${this.hostHeader}\r\n`;
    for (const [k, v] of Object.entries(headers)) {
      // Never sent: a value that would end the header (a forwarded Authorization, say).
      if (UNSAFE.test(k) || UNSAFE.test(v)) throw Object.assign(new Error('invalid header value'), { code: 'UND_ERR_INVALID_ARG' });
      text += `${k}: ${v}\r\n`;
    }
    if (UNSAFE.test(target) || target.includes(' ')) throw Object.assign(new Error('invalid request target'), { code: 'UND_ERR_INVALID_ARG' });
    text += '\r\n';
    for (let attempt = 0; ; attempt++) {
      const reused = this.#idle.pop();
      const conn = reused ?? this.#connect();
      try {
        return await new Promise<DirectResult>((resolve, reject) => conn.send(text, {
          into, accept, progress, resolve, reject, headLen: 0, bodyLen: 0, got: 0, answered: false,
        }));
      } catch (err) {
        if (reused && attempt === 0 && !(err as { answered?: boolean }).answered) continue;
        throw err;
      }
    }
  }

  /**
   * The bytes at `offset` (as many as `into` holds, which `headers` ask for with their Range)
   * when the answer is a 206 whose Content-Range starts at `offset` and `isVersion(head, total)`
   * holds; undefined, with nothing written, for any other answer.
   */
  async range(
    target: string, headers: Record<string, string>, offset: number, into: Buffer,
    isVersion: (head: Head, total: number | undefined) => boolean, progress: (filled: number) => void,
  ): Promise<Buffer | undefined> {
    if (this.#ignoresRange) return undefined;
    const r = await this.get(target, headers, into, (head) => {
      if (head.status !== 206) return false;
      const cr = contentRange(head.headers['content-range']);
      return cr.start === offset && isVersion(head, cr.total);
    }, progress);
    if (!r.taken) {
      if (r.head.status === 200) {
        this.#ignoresRange = true;
        this.close();
      }
      return undefined;
    }
    return r.got === into.length ? into : into.subarray(0, r.got);
  }

  #connect(): Connection {
    const c = new Connection(this.host, this.port, this.timeoutMs);
    c.onIdle = (conn) => {
      if (this.#closed || this.#idle.length >= this.maxIdle) conn.socket.destroy();
      else this.#idle.push(conn);
    };
    c.onGone = (conn) => {
      const i = this.#idle.indexOf(conn);
      if (i >= 0) this.#idle.splice(i, 1);
    };
    return c;
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#idle.splice(0)) c.socket.destroy();
  }
}
