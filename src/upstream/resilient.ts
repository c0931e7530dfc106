import type { Readable } from 'node:stream';
import { IncompleteBodyError, UpstreamUnavailableError, isTransient, UpstreamTimeoutError } from '../errors.js';
import type { CallContext, CopyOptions, Entry, MoveOptions, Quota, ReadOptions, Upstream, WriteOptions } from './types.js';

// Wraps any upstream with the outage policy: a timeout per operation, bounded
// retries with exponential backoff and full jitter for idempotent reads only, a retry budget
// so that an outage cannot turn into a retry storm, and a breaker: after `failureThreshold`
// consecutive failures the upstream counts as down and calls fail at once for `downFor`,
// after which one call probes it again. Cached data keeps being served meanwhile
// (cachemgr), and /readyz reports `healthy`.

export interface UpstreamPolicy {
  timeout: number;
  retries: number;
  failureThreshold: number;
  downFor: number;
}

export interface UpstreamEvents {
  onRetry?(operation: string): void;
  onHealth?(healthy: boolean): void;
  /** Set by a serving gateway: crash debris (S3 uploads left open) is swept, and failures to do so reported here. */
  onSweepError?: (err: unknown) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ResilientUpstream implements Upstream {
  readonly inner: Upstream;
  readonly #policy: UpstreamPolicy;
  readonly #events: UpstreamEvents;
  #failures = 0;
  #downUntil = 0;
  #probing = false;
  /** Retries cost a token; successes earn a tenth of one back (at most 10 banked). */
  #retryTokens = 10;

  /** Present exactly when the inner upstream has it: callers test for the method. */
  readonly quota?: (path: string, ctx?: CallContext) => Promise<Quota>;
  readonly setMtime?: (path: string, mtimeMs: number, ctx?: CallContext) => Promise<void>;
  readonly contentMd5?: (validator: string) => string | undefined;

  constructor(inner: Upstream, policy: UpstreamPolicy, events: UpstreamEvents = {}) {
    this.inner = inner;
    this.#policy = policy;
    this.#events = events;
    if (inner.quota) this.quota = (path, ctx) => this.#call('quota', true, () => inner.quota!(path, ctx));
    if (inner.setMtime) this.setMtime = (path, ms, ctx) => this.#call('setmtime', false, () => inner.setMtime!(path, ms, ctx));
    if (inner.contentMd5) this.contentMd5 = (v) => inner.contentMd5!(v); // no call upstream: nothing to guard
  }

  get id(): string { return this.inner.id; }
  get preferredReadBytes(): number | undefined { return this.inner.preferredReadBytes; }
  /** False while the breaker is open (the upstream failed repeatedly and was not seen back). */
  get healthy(): boolean { return this.#failures < this.#policy.failureThreshold; }
  /** The breaker for metrics: 0 closed, 1 half-open (the next call probes), 2 open. */
  get breakerState(): 0 | 1 | 2 {
    if (this.healthy) return 0;
    return Date.now() >= this.#downUntil || this.#probing ? 1 : 2;
  }

  #succeeded(): void {
    const wasDown = !this.healthy;
    this.#failures = 0;
    this.#downUntil = 0;
    this.#retryTokens = Math.min(10, this.#retryTokens + 0.1);
    if (wasDown) this.#events.onHealth?.(true);
  }

  #failed(): void {
    this.#failures++;
    if (this.#failures === this.#policy.failureThreshold) this.#events.onHealth?.(false);
    if (!this.healthy) this.#downUntil = Date.now() + this.#policy.downFor;
  }

  #timed<T>(p: Promise<T>, operation: string, onTimeout?: () => void): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        onTimeout?.();
        reject(new UpstreamTimeoutError(`upstream ${operation} timed out after ${this.#policy.timeout} ms`));
      }, this.#policy.timeout);
    });
    p.catch(() => {}); // a late failure after the timeout is not unhandled
    return Promise.race([p, limit]).finally(() => clearTimeout(timer));
  }

  async #call<T>(operation: string, retryable: boolean, fn: () => Promise<T>, timed = true, onTimeout?: () => void): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (!this.healthy) {
        // Down: fail fast, except for one probe once `downFor` has passed.
        if (Date.now() < this.#downUntil || this.#probing) throw new UpstreamUnavailableError('upstream is down');
        this.#probing = true;
      }
      try {
        const v = await (timed ? this.#timed(fn(), operation, onTimeout) : fn());
        this.#succeeded();
        return v;
      } catch (err) {
        // The client's body failed (it went away): that says nothing about the upstream.
        if (err instanceof IncompleteBodyError) throw err;
        if (!isTransient(err)) { this.#succeeded(); throw err; } // the upstream answered
        this.#failed();
        if (!retryable || attempt >= this.#policy.retries || !this.healthy || this.#retryTokens < 1) throw err;
        this.#retryTokens--;
        this.#events.onRetry?.(operation);
        await sleep(Math.random() * Math.min(2000, 100 * 2 ** attempt));
      } finally {
        this.#probing = false;
      }
    }
  }

  stat(path: string, ctx?: CallContext): Promise<Entry> { return this.#call('stat', true, () => this.inner.stat(path, ctx)); }

  async *list(path: string, ctx?: CallContext): AsyncIterable<Entry> {
    // Retried only until the first entry: after that the caller has already used some.
    const it = await this.#call('list', true, async () => {
      const iter = this.inner.list(path, ctx)[Symbol.asyncIterator]();
      return { iter, first: await iter.next() };
    });
    let next = it.first;
    let failed = false;
    // One watchdog per listing instead of a timer per entry: a listing is many cheap steps.
    let waitingSince = 0;
    let abort: ((err: Error) => void) | undefined;
    const watchdog = setInterval(() => {
      if (abort && Date.now() - waitingSince > this.#policy.timeout) {
        abort(new UpstreamTimeoutError(`upstream list timed out after ${this.#policy.timeout} ms`));
      }
    }, Math.max(10, Math.min(1000, this.#policy.timeout / 4)));
    watchdog.unref();
    try {
      while (!next.done) {
        yield next.value;
        try {
          waitingSince = Date.now();
          next = await new Promise<IteratorResult<Entry>>((resolve, reject) => {
            abort = reject;
            it.iter.next().then(resolve, reject);
          });
        } catch (err) {
          failed = true;
          if (isTransient(err)) this.#failed();
          throw err;
        } finally {
          abort = undefined;
        }
      }
    } finally {
      clearInterval(watchdog);
      // A consumer that stops early (client gone) must release the inner listing too. After a
      // failed (maybe still pending) next(), return() would queue behind it: do not wait for it.
      if (!next.done) {
        const closing = it.iter.return?.(undefined);
        if (failed) closing?.catch(() => {});
        else await closing;
      }
    }
  }

  read(path: string, opts: ReadOptions, ctx?: CallContext): Promise<Buffer> {
    // A timed-out attempt keeps writing into the sink's buffer until it ends by itself.
    return this.#call('read', true, () => this.inner.read(path, opts, ctx), true, () => opts.sink?.abandon?.());
  }

  // A body streams at the client's pace: no timeout on the whole write, and never a retry.
  write(path: string, body: Readable, opts?: WriteOptions, ctx?: CallContext): Promise<Entry> {
    return this.#call('write', false, () => this.inner.write(path, body, opts, ctx).catch((err: unknown) => {
      // The caller fails its body with IncompleteBodyError when the client goes away; a backend
      // may report that as a connection error of its own. It is the client's, not the upstream's.
      if (body.errored instanceof IncompleteBodyError) throw body.errored;
      throw err;
    }), false);
  }
  mkdir(path: string, ctx?: CallContext): Promise<void> { return this.#call('mkdir', false, () => this.inner.mkdir(path, ctx)); }
  remove(path: string, ctx?: CallContext): Promise<void> { return this.#call('remove', false, () => this.inner.remove(path, ctx), false); }
  move(a: string, b: string, o: MoveOptions, ctx?: CallContext): Promise<void> { return this.#call('move', false, () => this.inner.move(a, b, o, ctx), false); }
  copy(a: string, b: string, o: CopyOptions, ctx?: CallContext): Promise<void> { return this.#call('copy', false, () => this.inner.copy(a, b, o, ctx), false); }

  close(): Promise<void> { return this.inner.close?.() ?? Promise.resolve(); }
}
