import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import {
  DavgateError, NotFoundError, PreconditionFailedError, UpstreamUnavailableError, type ErrorCode,
} from '../../src/errors.js';
import { ResilientUpstream, type UpstreamPolicy } from '../../src/upstream/resilient.js';
import type { Entry, Quota, Upstream } from '../../src/upstream/types.js';

// ResilientUpstream against a scripted inner upstream: every inner call is counted and
// answered by the script the test sets, so retries, timeouts and the breaker are observable.

type Op = 'stat' | 'list' | 'read' | 'write' | 'mkdir' | 'remove' | 'move' | 'copy' | 'quota' | 'setMtime';

const entry = (name: string): Entry => ({ name, path: '/' + name, kind: 'file', size: 1, mtimeMs: 0, birthtimeMs: 0, validator: name });
const down = () => new UpstreamUnavailableError('connection refused');
const never = <T>() => new Promise<T>(() => { /* hangs */ });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

class ScriptedUpstream implements Upstream {
  readonly id = 'fake:scripted';
  readonly calls = new Map<Op, number>();
  /** Time of every inner call, in order. */
  readonly times: number[] = [];
  /** Answers call number n (0-based) of an operation; the default fails as an outage would. */
  script: (op: Op, n: number) => Promise<unknown> = () => Promise.reject(down());
  /** Builds the iterable of list call n. */
  listScript: (n: number) => AsyncIterable<Entry> = () => ({ [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(down()) }) });

  count(op: Op): number { return this.calls.get(op) ?? 0; }
  get total(): number { let n = 0; for (const v of this.calls.values()) n += v; return n; }
  #hit(op: Op): number { const n = this.count(op); this.calls.set(op, n + 1); this.times.push(performance.now()); return n; }
  #run<T>(op: Op): Promise<T> { return this.script(op, this.#hit(op)) as Promise<T>; }

  stat(): Promise<Entry> { return this.#run('stat'); }
  list(): AsyncIterable<Entry> { return this.listScript(this.#hit('list')); }
  read(): Promise<Buffer> { return this.#run('read'); }
  write(): Promise<Entry> { return this.#run('write'); }
  mkdir(): Promise<void> { return this.#run('mkdir'); }
  remove(): Promise<void> { return this.#run('remove'); }
  move(): Promise<void> { return this.#run('move'); }
  copy(): Promise<void> { return this.#run('copy'); }
  quota(): Promise<Quota> { return this.#run('quota'); }
  setMtime(): Promise<void> { return this.#run('setMtime'); }
}

const POLICY: UpstreamPolicy = { timeout: 1000, retries: 2, failureThreshold: 100, downFor: 1000 };

function make(policy: Partial<UpstreamPolicy> = {}) {
  const inner = new ScriptedUpstream();
  const retries: string[] = [];
  const health: boolean[] = [];
  const up = new ResilientUpstream(inner, { ...POLICY, ...policy }, {
    onRetry: (op) => retries.push(op),
    onHealth: (h) => health.push(h),
  });
  return { inner, up, retries, health };
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, what: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof DavgateError, `${what}: expected a DavgateError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, `${what}: ${e.message}`);
    return true;
  }, what);
}

/** Full jitter made deterministic: every backoff sleeps half its cap. */
function halfJitter(t: TestContext): void {
  t.mock.method(Math, 'random', () => 0.5);
}

/** An iterator that yields `names` and then fails with `err` (or ends); `closed` tells whether return() ran. */
function scriptedList(names: string[], err?: Error): AsyncIterable<Entry> & { closed: boolean } {
  const state = { closed: false };
  async function* gen(): AsyncGenerator<Entry> {
    try {
      for (const n of names) yield entry(n);
      if (err) throw err;
    } finally {
      state.closed = true;
    }
  }
  const g = gen();
  // defineProperty, not Object.assign: assign would copy the getter's value once (false) instead of the getter.
  return Object.defineProperty(g, 'closed', { get: () => state.closed }) as AsyncGenerator<Entry> & { closed: boolean };
}

describe('ResilientUpstream: retries', () => {
  it('a transient read failure is retried with exponential backoff', async (t) => {
    halfJitter(t);
    const { inner, up, retries, health } = make();
    inner.script = (op, n) => (n < 2 ? Promise.reject(down()) : Promise.resolve(Buffer.from('data')));
    const out = await up.read('/f', { offset: 0, length: 4 });
    assert.equal(out.toString(), 'data');
    assert.equal(inner.count('read'), 3, 'two failures, then success');
    assert.deepEqual(retries, ['read', 'read']);
    const [t0, t1, t2] = inner.times;
    assert.ok(t0 !== undefined && t1 !== undefined && t2 !== undefined);
    // Backoff caps are 100 ms and 200 ms; with random() = 0.5 the sleeps are 50 and 100 ms.
    assert.ok(t1 - t0 >= 45, `first backoff ${t1 - t0} ms`);
    assert.ok(t2 - t1 >= 95, `second backoff ${t2 - t1} ms, longer than the first`);
    assert.ok(up.healthy);
    assert.deepEqual(health, []);
  });

  it('retries stop after `retries`; the last error is thrown', async (t) => {
    t.mock.method(Math, 'random', () => 0);
    const { inner, up } = make({ retries: 3 });
    await rejectsWith(up.read('/f', { offset: 0, length: 1 }), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'read during an outage');
    assert.equal(inner.count('read'), 4, '1 + 3 retries');
    await rejectsWith(up.stat('/f'), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'stat during an outage');
    assert.equal(inner.count('stat'), 4);
  });

  it('NotFoundError and other answers of the upstream are not retried and do not count as failures', async () => {
    const { inner, up } = make({ failureThreshold: 2 });
    inner.script = (op) => Promise.reject(op === 'read' ? new PreconditionFailedError() : new NotFoundError('/f'));
    await rejectsWith(up.stat('/f'), 'DAVGATE_NOT_FOUND', 'stat');
    await rejectsWith(up.stat('/f'), 'DAVGATE_NOT_FOUND', 'stat');
    await rejectsWith(up.stat('/f'), 'DAVGATE_NOT_FOUND', 'stat');
    await rejectsWith(up.read('/f', { offset: 0, length: 1, expectValidator: 'v' }), 'DAVGATE_PRECONDITION_FAILED', 'read');
    assert.equal(inner.count('stat'), 3, 'one inner call each');
    assert.equal(inner.count('read'), 1);
    assert.ok(up.healthy, 'an upstream that answers is healthy');
  });

  it('writes and other mutations are never retried', async () => {
    const { inner, up, retries } = make({ retries: 5 });
    await rejectsWith(up.write('/f', Readable.from([Buffer.from('x')]), { size: 1 }), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'write');
    await rejectsWith(up.mkdir('/d'), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'mkdir');
    await rejectsWith(up.remove('/d'), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'remove');
    await rejectsWith(up.move('/a', '/b', { overwrite: false }), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'move');
    await rejectsWith(up.copy('/a', '/b', { overwrite: false }), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'copy');
    await rejectsWith(up.setMtime!('/a', 0), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'setMtime');
    for (const op of ['write', 'mkdir', 'remove', 'move', 'copy', 'setMtime'] as const) assert.equal(inner.count(op), 1, op);
    assert.deepEqual(retries, []);
  });

  it('the retry budget stops retries under a sustained outage', async (t) => {
    t.mock.method(Math, 'random', () => 0);
    const { inner, up } = make({ retries: 2, failureThreshold: 1_000_000 }); // breaker out of the way
    for (let i = 0; i < 50; i++) await rejectsWith(up.read('/f', { offset: 0, length: 1 }), 'DAVGATE_UPSTREAM_UNAVAILABLE', `read ${i}`);
    const calls = inner.count('read');
    assert.ok(calls <= 50 + 10, `${calls} inner reads for 50 failing reads: at most the 10 banked retries`);
    assert.ok(calls < (50 * 3) / 2, `${calls} is far fewer than 50 × (retries + 1) = 150`);
  });

  it('successes earn the retry budget back', async (t) => {
    t.mock.method(Math, 'random', () => 0);
    const { inner, up } = make({ retries: 1, failureThreshold: 1_000_000 });
    let failing = true;
    inner.script = () => (failing ? Promise.reject(down()) : Promise.resolve(Buffer.alloc(1)));
    for (let i = 0; i < 20; i++) await up.read('/f', { offset: 0, length: 1 }).catch(() => undefined);
    const spent = inner.count('read');
    await up.read('/f', { offset: 0, length: 1 }).catch(() => undefined);
    assert.equal(inner.count('read') - spent, 1, 'budget empty: no retry');
    failing = false;
    for (let i = 0; i < 20; i++) await up.read('/f', { offset: 0, length: 1 }); // +2 tokens
    failing = true;
    const before = inner.count('read');
    await up.read('/f', { offset: 0, length: 1 }).catch(() => undefined);
    assert.equal(inner.count('read') - before, 2, 'a retry is affordable again');
  });
});

describe('ResilientUpstream: timeouts', () => {
  it('a hung call times out with DAVGATE_UPSTREAM_TIMEOUT within the timeout', async () => {
    const { inner, up } = make({ timeout: 100, retries: 0 });
    inner.script = () => never();
    for (const [what, call] of [['read', () => up.read('/f', { offset: 0, length: 1 })], ['stat', () => up.stat('/f')], ['mkdir', () => up.mkdir('/d')]] as const) {
      const t0 = performance.now();
      await rejectsWith(call(), 'DAVGATE_UPSTREAM_TIMEOUT', what);
      const took = performance.now() - t0;
      assert.ok(took >= 95 && took < 400, `${what} gave up after ${took} ms, timeout 100 ms`);
    }
  });

  it('a timed-out read counts as transient: retried, then served', async (t) => {
    halfJitter(t);
    const { inner, up } = make({ timeout: 80, retries: 2 });
    inner.script = (_op, n) => (n === 0 ? never() : Promise.resolve(Buffer.from('ok')));
    // The first attempt may still write into the sink's buffer: the sink is told never to reuse it.
    let abandoned = 0;
    const sink = { buffer: Buffer.alloc(2), progress: () => {}, abandon: () => { abandoned++; } };
    assert.equal((await up.read('/f', { offset: 0, length: 2, sink })).toString(), 'ok');
    assert.equal(inner.count('read'), 2);
    assert.equal(abandoned, 1);
  });

  it('a list that hangs after its first entry times out and the error reaches the consumer', async () => {
    const { inner, up } = make({ timeout: 100, retries: 2 });
    // An async generator, as FsUpstream.list is: its return() queues behind the hung next().
    inner.listScript = () => (async function* () { yield entry('a'); await never(); })();
    const names: string[] = [];
    const t0 = performance.now();
    const outcome = await Promise.race([
      (async () => { for await (const e of up.list('/')) names.push(e.name); })().then(() => 'ended', (e: unknown) => e),
      sleep(2000).then(() => 'still hanging after 2 s'),
    ]);
    assert.deepEqual(names, ['a']);
    assert.ok(outcome instanceof DavgateError, `expected DAVGATE_UPSTREAM_TIMEOUT, got ${String(outcome)}`);
    assert.equal(outcome.code, 'DAVGATE_UPSTREAM_TIMEOUT');
    assert.ok(performance.now() - t0 < 1000, 'within about the timeout');
    assert.equal(inner.count('list'), 1, 'not retried after the first entry');
  });

  it('a hung list times out before its first entry and is retried', async (t) => {
    halfJitter(t);
    const { inner, up } = make({ timeout: 80, retries: 1 });
    inner.listScript = (n) => (n === 0 ? { [Symbol.asyncIterator]: () => ({ next: () => never() }) } : scriptedList(['a']));
    const names: string[] = [];
    for await (const e of up.list('/')) names.push(e.name);
    assert.deepEqual(names, ['a']);
    assert.equal(inner.count('list'), 2);
  });
});

describe('ResilientUpstream: breaker', () => {
  it('after failureThreshold failures calls fail fast until downFor, then one probe closes it', async () => {
    const { inner, up, health } = make({ retries: 0, failureThreshold: 3, downFor: 300 });
    for (let i = 0; i < 3; i++) await rejectsWith(up.stat('/f'), 'DAVGATE_UPSTREAM_UNAVAILABLE', `failure ${i}`);
    assert.equal(up.healthy, false);
    assert.deepEqual(health, [false]);
    const tripped = performance.now();
    const before = inner.total;

    for (const [what, call] of [
      ['stat', () => up.stat('/f')],
      ['read', () => up.read('/f', { offset: 0, length: 1 })],
      ['list', async () => { for await (const _e of up.list('/')) { /* none */ } }],
      ['write', () => up.write('/f', Readable.from([]))],
      ['mkdir', () => up.mkdir('/d')],
    ] as const) {
      const t0 = performance.now();
      await rejectsWith(call(), 'DAVGATE_UPSTREAM_UNAVAILABLE', `${what} while down`);
      const took = performance.now() - t0;
      assert.ok(took < 10, `${what} failed fast: ${took} ms`);
    }
    assert.equal(inner.total, before, 'the inner upstream is not called while the breaker is open');

    await sleep(Math.max(0, 300 - (performance.now() - tripped)) + 30);
    inner.script = async () => { await sleep(40); return entry('f'); };
    const probe = up.stat('/f');
    await rejectsWith(up.stat('/g'), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'a second call during the probe');
    assert.equal((await probe).name, 'f');
    assert.equal(inner.total, before + 1, 'exactly one probe went through');
    assert.equal(up.healthy, true, 'a successful probe closes the breaker');
    assert.deepEqual(health, [false, true]);
    await up.stat('/f');
    await up.read('/f', { offset: 0, length: 1 }).catch(() => undefined);
    assert.equal(inner.total, before + 3, 'calls go through again');
  });

  it('a failed probe keeps the breaker open for another downFor', async () => {
    const { inner, up } = make({ retries: 0, failureThreshold: 2, downFor: 150 });
    await up.stat('/f').catch(() => undefined);
    await up.stat('/f').catch(() => undefined);
    assert.equal(up.healthy, false);
    await sleep(170);
    await rejectsWith(up.stat('/f'), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'failing probe');
    assert.equal(inner.count('stat'), 3, 'the probe reached the upstream');
    await rejectsWith(up.stat('/f'), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'right after the failed probe');
    assert.equal(inner.count('stat'), 3, 'and the next call failed fast');
    assert.equal(up.healthy, false);
  });

  it('retries stop once the breaker opens', async (t) => {
    t.mock.method(Math, 'random', () => 0);
    const { inner, up } = make({ retries: 5, failureThreshold: 2 });
    await rejectsWith(up.read('/f', { offset: 0, length: 1 }), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'read');
    assert.equal(inner.count('read'), 2, 'the second failure opened the breaker: no third attempt');
  });
});

describe('ResilientUpstream: list', () => {
  it('a failure before the first entry is retried', async (t) => {
    t.mock.method(Math, 'random', () => 0);
    const { inner, up } = make();
    inner.listScript = (n) => (n === 0 ? scriptedList([], down()) : scriptedList(['a', 'b']));
    const names: string[] = [];
    for await (const e of up.list('/')) names.push(e.name);
    assert.deepEqual(names, ['a', 'b']);
    assert.equal(inner.count('list'), 2);
  });

  it('a failure after the first entry is not retried: the consumer sees the error', async (t) => {
    t.mock.method(Math, 'random', () => 0);
    const { inner, up } = make();
    inner.listScript = () => scriptedList(['a', 'b'], down());
    const names: string[] = [];
    await rejectsWith((async () => { for await (const e of up.list('/')) names.push(e.name); })(), 'DAVGATE_UPSTREAM_UNAVAILABLE', 'list');
    assert.deepEqual(names, ['a', 'b'], 'entries before the failure, each once');
    assert.equal(inner.count('list'), 1, 'not restarted');
  });

  it('NotFoundError on list is not retried', async () => {
    const { inner, up } = make();
    inner.listScript = () => scriptedList([], new NotFoundError('/d'));
    await rejectsWith((async () => { for await (const _e of up.list('/d')) { /* none */ } })(), 'DAVGATE_NOT_FOUND', 'list');
    assert.equal(inner.count('list'), 1);
  });

  it('a consumer that stops early closes the inner listing', async () => {
    const { inner, up } = make();
    const iterables: Array<ReturnType<typeof scriptedList>> = [];
    inner.listScript = () => { const l = scriptedList(['a', 'b', 'c']); iterables.push(l); return l; };
    for await (const e of up.list('/')) if (e.name === 'a') break;
    assert.equal(iterables.length, 1);
    assert.equal(iterables[0]?.closed, true, 'return() reached the inner iterator (an fs listing holds an open directory handle)');
  });
});

describe('ResilientUpstream: passes through', () => {
  it('id, optional methods and results of the inner upstream', async () => {
    const { inner, up } = make();
    inner.script = (op) => Promise.resolve(op === 'quota' ? { availableBytes: 5, usedBytes: 6 } : entry('x'));
    assert.equal(up.id, inner.id);
    assert.equal(typeof up.setMtime, 'function');
    assert.deepEqual(await up.quota!('/'), { availableBytes: 5, usedBytes: 6 });
    assert.equal((await up.stat('/x')).name, 'x');
  });

  it('quota and setMtime are absent where the inner upstream has none', async () => {
    const { inner } = make();
    const bare: Upstream = {
      id: inner.id,
      stat: () => inner.stat(), list: () => inner.list(), read: () => inner.read(), write: () => inner.write(),
      mkdir: () => inner.mkdir(), remove: () => inner.remove(), move: () => inner.move(), copy: () => inner.copy(),
    };
    const up = new ResilientUpstream(bare, POLICY);
    assert.equal(up.quota, undefined);
    assert.equal(up.setMtime, undefined);
    assert.equal(inner.total, 0);
  });
});
