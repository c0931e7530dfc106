import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { DavgateError, STATUS_BY_CODE, type ErrorCode } from '../../src/errors.js';
import { joinPath, nameOf } from '../../src/davpath.js';
import type { Entry, Upstream } from '../../src/upstream/types.js';

// The one contract suite every Upstream must pass (as undici does: "ONE shared test suite
// run against every implementation"). Each case is a sentence of src/upstream/types.ts.
// Every case gets a fresh, empty upstream from `setup` and hands it back to `cleanup`.
// Only the public interface is used: nothing here knows how a backend stores things.

export interface ContractSubject {
  upstream: Upstream;
  cleanup(): Promise<void>;
  /** Which optional methods the harness expects the backend to have (true) or lack (false). */
  implements?: Partial<Record<OptionalMethod, boolean>>;
}

export type OptionalMethod = 'quota' | 'setMtime';

export type ContractSetup = () => Promise<ContractSubject>;

const CASE_TIMEOUT = 120_000;

// ---- helpers ---------------------------------------------------------------------------

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

/** A body in chunks of at most `chunk` bytes. */
function bodyOf(data: Buffer | string, chunk = 64 * 1024): Readable {
  const buf = typeof data === 'string' ? bytes(data) : data;
  const parts: Buffer[] = [];
  for (let off = 0; off < buf.length; off += chunk) parts.push(buf.subarray(off, off + chunk));
  return Readable.from(parts);
}

/** A body we push by hand, to hold a write open. */
function manualBody(): Readable {
  return new Readable({ read() { /* pushed by the test */ } });
}

/** Sends `first`, then fails with `err` as a client abort would. */
function failingBody(first: Buffer, err: Error): Readable {
  let sent = false;
  let failing = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(first);
      } else if (!failing) {
        failing = true;
        setTimeout(() => this.destroy(err), 20);
      }
    },
  });
}

async function put(up: Upstream, path: string, data: Buffer | string): Promise<Entry> {
  const buf = typeof data === 'string' ? bytes(data) : data;
  return up.write(path, bodyOf(buf), { size: buf.length });
}

async function collect(it: AsyncIterable<Entry>): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** A listing by name, checking the invariants every listed entry must satisfy. */
async function listing(up: Upstream, dir: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  for (const e of await collect(up.list(dir))) {
    assert.ok(e.name.length > 0 && !e.name.includes('/'), `list(${dir}): bad name ${JSON.stringify(e.name)}`);
    assert.equal(e.path, joinPath(dir, e.name), `list(${dir}): path of ${e.name}`);
    assert.ok(!out.has(e.name), `list(${dir}): ${e.name} listed twice`);
    assert.ok(e.kind === 'file' || e.kind === 'dir', `list(${dir}): kind of ${e.name}`);
    if (e.kind === 'dir') assert.equal(e.size, 0, `list(${dir}): a directory has size 0`);
    assert.equal(typeof e.validator, 'string');
    out.set(e.name, e);
  }
  return out;
}

const namesIn = async (up: Upstream, dir: string): Promise<string[]> => [...(await listing(up, dir)).keys()].sort();

async function content(up: Upstream, path: string): Promise<string> {
  return (await up.read(path, { offset: 0, length: 1 << 24 })).toString('utf8');
}

function describeError(e: unknown): string {
  if (e instanceof DavgateError) return `${e.name} ${e.code}: ${e.message}`;
  if (e instanceof Error) return `raw ${e.constructor.name} (${e.name}): ${e.message}`;
  return `non-error ${String(e)}`;
}

/** Awaits `p` and checks that it rejects with a DavgateError of `code` (never a raw error). */
async function rejectsWith(p: Promise<unknown>, code: ErrorCode, what: string): Promise<DavgateError> {
  let value: unknown;
  try {
    value = await p;
  } catch (e) {
    assert.ok(e instanceof DavgateError, `${what}: expected a DavgateError ${code}, got ${describeError(e)}`);
    assert.equal(e.code, code, `${what}: expected ${code}, got ${describeError(e)}`);
    return e;
  }
  assert.fail(`${what}: resolved (${JSON.stringify(value)?.slice(0, 200)}), expected ${code}`);
}

/** The given path is absent: stat says NotFound and its parent does not list it. */
async function assertAbsent(up: Upstream, path: string, what: string): Promise<void> {
  await rejectsWith(up.stat(path), 'DAVGATE_NOT_FOUND', `${what}: stat(${path})`);
  const parent = path.slice(0, path.lastIndexOf('/')) || '/';
  const names = await namesIn(up, parent).catch(() => [] as string[]);
  assert.ok(!names.includes(nameOf(path)), `${what}: list(${parent}) still shows ${nameOf(path)}`);
}

function pattern(size: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

async function inBatches<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- the suite -------------------------------------------------------------------------

/**
 * Cases a third-party server is known to fail through no fault of the backend (case title →
 * the server's defect). They are reported as skipped with that reason, so the list stays
 * visible in every run instead of being silently left out; a title that names no case fails.
 */
export type KnownDefects = Readonly<Record<string, string>>;

export function upstreamContract(name: string, setup: ContractSetup, knownDefects: KnownDefects = {}): void {
  describe(name, () => {
    const titles = new Set<string>();
    /** One case on a fresh upstream. */
    function contract(title: string, fn: (up: Upstream, subject: ContractSubject) => Promise<void>): void {
      titles.add(title);
      const defect = knownDefects[title];
      if (defect !== undefined) {
        it(title, { skip: `known defect of the server: ${defect}` }, () => undefined);
        return;
      }
      it(title, { timeout: CASE_TIMEOUT }, async () => {
        const subject = await setup();
        try {
          await fn(subject.upstream, subject);
        } finally {
          await subject.cleanup();
        }
      });
    }

    // ---- identity and optional methods ----

    contract('id is a non-empty string; the optional methods are there as the harness expects', async (up, subject) => {
      assert.equal(typeof up.id, 'string');
      assert.ok(up.id.length > 0);
      for (const [k, v] of Object.entries(subject.implements ?? {})) {
        assert.equal(typeof up[k as OptionalMethod] === 'function', v, `${k}()`);
      }
    });

    // ---- stat ----

    contract('stat of the root: a directory named ""', async (up) => {
      const e = await up.stat('/');
      assert.equal(e.kind, 'dir');
      assert.equal(e.name, '');
      assert.equal(e.path, '/');
      assert.equal(e.size, 0);
    });

    contract('stat of a file: kind, name, path, size, times, validator', async (up) => {
      const before = Date.now();
      const written = await put(up, '/hello.txt', 'hello world');
      const e = await up.stat('/hello.txt');
      assert.equal(e.kind, 'file');
      assert.equal(e.name, 'hello.txt');
      assert.equal(e.path, '/hello.txt');
      assert.equal(e.size, 11);
      assert.ok(Number.isFinite(e.mtimeMs) && Number.isFinite(e.birthtimeMs), 'finite times');
      // Clocks of a remote store may differ a little; a file written now is not from another day.
      assert.ok(Math.abs(e.mtimeMs - before) < 86_400_000, `mtimeMs ${e.mtimeMs} is about now (${before})`);
      assert.ok(e.validator.length > 0, 'non-empty validator');
      assert.equal(written.validator, e.validator, 'write() returns the entry stat() then reports');
      assert.equal(written.size, 11);
      assert.equal(written.kind, 'file');
      assert.equal(written.path, '/hello.txt');
      assert.equal(written.name, 'hello.txt');
    });

    contract('stat of a directory: kind dir, size 0', async (up) => {
      await up.mkdir('/docs');
      const e = await up.stat('/docs');
      assert.equal(e.kind, 'dir');
      assert.equal(e.name, 'docs');
      assert.equal(e.path, '/docs');
      assert.equal(e.size, 0);
      assert.ok(Number.isFinite(e.mtimeMs));
      assert.equal(typeof e.validator, 'string');
    });

    contract('stat of a missing path is NotFoundError (also below a missing dir and below a file)', async (up) => {
      await put(up, '/file', 'x');
      await rejectsWith(up.stat('/missing'), 'DAVGATE_NOT_FOUND', 'stat(/missing)');
      await rejectsWith(up.stat('/missing/deeper'), 'DAVGATE_NOT_FOUND', 'stat(/missing/deeper)');
      await rejectsWith(up.stat('/file/below'), 'DAVGATE_NOT_FOUND', 'stat(/file/below)');
      await rejectsWith(up.stat('/fil'), 'DAVGATE_NOT_FOUND', 'stat(/fil), a prefix of an existing name');
    });

    contract('nested paths: stat, list and read several levels down', async (up) => {
      await up.mkdir('/a');
      await up.mkdir('/a/b');
      await up.mkdir('/a/b/c');
      await put(up, '/a/b/c/deep.txt', 'deep');
      await put(up, '/a/b/side.txt', 'side');
      assert.equal((await up.stat('/a/b/c')).kind, 'dir');
      const f = await up.stat('/a/b/c/deep.txt');
      assert.equal(f.kind, 'file');
      assert.equal(f.size, 4);
      assert.equal(f.name, 'deep.txt');
      assert.equal(f.path, '/a/b/c/deep.txt');
      assert.deepEqual(await namesIn(up, '/a'), ['b']);
      assert.deepEqual(await namesIn(up, '/a/b'), ['c', 'side.txt']);
      assert.deepEqual(await namesIn(up, '/a/b/c'), ['deep.txt']);
      assert.deepEqual(await namesIn(up, '/'), ['a'], 'the root lists only its own children');
      assert.equal(await content(up, '/a/b/c/deep.txt'), 'deep');
    });

    // ---- list ----

    contract('list of a directory: names, kinds, sizes, paths', async (up) => {
      await up.mkdir('/d');
      await put(up, '/d/empty', '');
      await put(up, '/d/five', '12345');
      await put(up, '/d/ten.bin', pattern(10));
      await up.mkdir('/d/sub');
      await put(up, '/d/sub/inner', 'not listed in /d');
      const l = await listing(up, '/d');
      assert.deepEqual([...l.keys()].sort(), ['empty', 'five', 'sub', 'ten.bin']);
      assert.deepEqual(
        [...l.values()].map((e) => [e.name, e.kind, e.size, e.path]).sort(),
        [['empty', 'file', 0, '/d/empty'], ['five', 'file', 5, '/d/five'], ['sub', 'dir', 0, '/d/sub'], ['ten.bin', 'file', 10, '/d/ten.bin']],
      );
    });

    contract('list of the root', async (up) => {
      assert.deepEqual(await namesIn(up, '/'), [], 'a fresh upstream is empty');
      await put(up, '/f', 'x');
      await up.mkdir('/g');
      const l = await listing(up, '/');
      assert.deepEqual([...l.keys()].sort(), ['f', 'g']);
      assert.equal(l.get('f')?.kind, 'file');
      assert.equal(l.get('g')?.kind, 'dir');
    });

    contract('list of an empty (mkdir\'d) directory is empty', async (up) => {
      await up.mkdir('/empty');
      assert.deepEqual(await collect(up.list('/empty')), []);
    });

    contract('list of a missing directory is NotFoundError', async (up) => {
      await rejectsWith(collect(up.list('/nope')), 'DAVGATE_NOT_FOUND', 'list(/nope)');
      await rejectsWith(collect(up.list('/nope/deeper')), 'DAVGATE_NOT_FOUND', 'list(/nope/deeper)');
    });

    contract('list of a file is NotADirectoryError', async (up) => {
      await put(up, '/file.txt', 'x');
      await rejectsWith(collect(up.list('/file.txt')), 'DAVGATE_NOT_A_DIRECTORY', 'list(/file.txt)');
    });

    contract('list of 1,200 entries is complete (more than one S3 page)', async (up) => {
      await up.mkdir('/many');
      const names = Array.from({ length: 1200 }, (_, i) => `f${String(i).padStart(4, '0')}`);
      await inBatches(names, 32, (n) => put(up, `/many/${n}`, n));
      await up.mkdir('/many/zz-dir'); // a rolled-up prefix after the last page of keys
      await up.mkdir('/many/a-dir'); // and one before the first
      const l = await listing(up, '/many');
      assert.equal(l.size, 1202, `1202 entries listed, got ${l.size}`);
      for (const n of names) {
        const e = l.get(n);
        assert.ok(e, `${n} listed`);
        assert.equal(e.kind, 'file');
        assert.equal(e.size, n.length);
      }
      assert.equal(l.get('zz-dir')?.kind, 'dir');
      assert.equal(l.get('a-dir')?.kind, 'dir');
    });

    contract('a consumer may stop a listing early; the upstream stays usable', async (up) => {
      await up.mkdir('/d');
      await inBatches(Array.from({ length: 100 }, (_, i) => `n${i}`), 25, (n) => put(up, `/d/${n}`, n));
      let seen = 0;
      for await (const _e of up.list('/d')) {
        if (++seen === 3) break;
      }
      assert.equal(seen, 3);
      assert.equal((await namesIn(up, '/d')).length, 100);
    });

    // ---- read ----

    contract('read: whole, middle, past EOF (short), at EOF and beyond (empty)', async (up) => {
      const data = pattern(1000, 1);
      await put(up, '/r.bin', data);
      assert.deepEqual(await up.read('/r.bin', { offset: 0, length: 1000 }), data, 'whole');
      assert.deepEqual(await up.read('/r.bin', { offset: 0, length: 4096 }), data, 'whole, asking for more');
      assert.deepEqual(await up.read('/r.bin', { offset: 100, length: 200 }), data.subarray(100, 300), 'middle');
      assert.deepEqual(await up.read('/r.bin', { offset: 999, length: 1 }), data.subarray(999), 'last byte');
      assert.deepEqual(await up.read('/r.bin', { offset: 900, length: 500 }), data.subarray(900), 'past EOF: short');
      assert.equal((await up.read('/r.bin', { offset: 1000, length: 10 })).length, 0, 'at EOF: empty');
      assert.equal((await up.read('/r.bin', { offset: 5000, length: 10 })).length, 0, 'beyond EOF: empty');
    });

    contract('read of a missing file is NotFoundError', async (up) => {
      await rejectsWith(up.read('/missing', { offset: 0, length: 10 }), 'DAVGATE_NOT_FOUND', 'read(/missing)');
      await rejectsWith(up.read('/missing/x', { offset: 0, length: 10 }), 'DAVGATE_NOT_FOUND', 'read(/missing/x)');
    });

    contract('read with the right expectValidator (from write, stat and list) returns the bytes', async (up) => {
      const written = await put(up, '/v.txt', 'version one');
      const statted = await up.stat('/v.txt');
      const listed = (await listing(up, '/')).get('v.txt');
      assert.ok(listed);
      for (const [from, v] of [['write', written.validator], ['stat', statted.validator], ['list', listed.validator]] as const) {
        assert.equal((await up.read('/v.txt', { offset: 0, length: 100, expectValidator: v })).toString(), 'version one', `validator from ${from}`);
        assert.equal((await up.read('/v.txt', { offset: 8, length: 3, expectValidator: v })).toString(), 'one', `ranged, validator from ${from}`);
      }
    });

    contract('read with a stale validator after an overwrite is PreconditionFailedError', async (up) => {
      const old = await put(up, '/v.txt', 'version one');
      await put(up, '/v.txt', 'version two'); // same size, other bytes
      await rejectsWith(up.read('/v.txt', { offset: 0, length: 100, expectValidator: old.validator }), 'DAVGATE_PRECONDITION_FAILED', 'read with the old validator');
      await rejectsWith(up.read('/v.txt', { offset: 8, length: 3, expectValidator: old.validator }), 'DAVGATE_PRECONDITION_FAILED', 'ranged read with the old validator');
      await put(up, '/w.txt', 'short');
      const shorter = await put(up, '/w.txt', 'much longer content');
      assert.equal((await up.read('/w.txt', { offset: 0, length: 100, expectValidator: shorter.validator })).toString(), 'much longer content');
      await put(up, '/w.txt', 'tiny');
      await rejectsWith(up.read('/w.txt', { offset: 0, length: 100, expectValidator: shorter.validator }), 'DAVGATE_PRECONDITION_FAILED', 'read after a shrinking overwrite');
      // Not an empty buffer: that would tell the cache the old version ends here.
      await rejectsWith(up.read('/w.txt', { offset: 10, length: 5, expectValidator: shorter.validator }), 'DAVGATE_PRECONDITION_FAILED', 'read past the new end with the old validator');
    });

    // ---- write ----

    contract('write a new file: content, size and entry', async (up) => {
      const data = pattern(300_000, 2); // several chunks
      const e = await up.write('/new.bin', bodyOf(data, 16 * 1024), { size: data.length });
      assert.equal(e.kind, 'file');
      assert.equal(e.size, data.length);
      assert.equal(e.path, '/new.bin');
      assert.deepEqual(await up.read('/new.bin', { offset: 0, length: data.length + 1 }), data);
      assert.equal((await up.stat('/new.bin')).size, data.length);
    });

    contract('write without a declared size', async (up) => {
      const e = await up.write('/nosize.txt', bodyOf('no content-length'));
      assert.equal(e.size, 17);
      assert.equal(await content(up, '/nosize.txt'), 'no content-length');
    });

    contract('overwrite: new content, new size, and the validator changes', async (up) => {
      const a = await put(up, '/o.txt', 'first content');
      const b = await put(up, '/o.txt', 'second');
      assert.notEqual(b.validator, a.validator, 'validator changes on overwrite');
      assert.equal(b.size, 6);
      assert.equal(await content(up, '/o.txt'), 'second');
      const c = await put(up, '/o.txt', 'SECOND'); // same size, other bytes
      assert.notEqual(c.validator, b.validator, 'validator changes on a same-size overwrite');
      assert.equal(await content(up, '/o.txt'), 'SECOND');
      assert.deepEqual(await namesIn(up, '/'), ['o.txt']);
    });

    contract('write with a missing parent is ConflictError (also when the parent is a file)', async (up) => {
      await rejectsWith(put(up, '/nodir/f.txt', 'x'), 'DAVGATE_CONFLICT', 'write(/nodir/f.txt)');
      await rejectsWith(put(up, '/nodir/deeper/f.txt', 'x'), 'DAVGATE_CONFLICT', 'write(/nodir/deeper/f.txt)');
      await put(up, '/plain', 'x');
      await rejectsWith(put(up, '/plain/f.txt', 'x'), 'DAVGATE_CONFLICT', 'write(/plain/f.txt)');
      await assertAbsent(up, '/nodir', 'after the refused writes');
      assert.equal(await content(up, '/plain'), 'x');
    });

    contract('write: a body shorter than size is IncompleteBodyError and nothing is committed', async (up) => {
      await rejectsWith(up.write('/short.txt', bodyOf('12345'), { size: 10 }), 'DAVGATE_INCOMPLETE_BODY', 'short body, new file');
      await assertAbsent(up, '/short.txt', 'short body, new file');
      const old = await put(up, '/keep.txt', 'old content');
      await rejectsWith(up.write('/keep.txt', bodyOf('12345'), { size: 10 }), 'DAVGATE_INCOMPLETE_BODY', 'short body, overwrite');
      assert.equal(await content(up, '/keep.txt'), 'old content');
      assert.equal((await up.stat('/keep.txt')).validator, old.validator, 'old version still in place');
      assert.deepEqual(await namesIn(up, '/'), ['keep.txt'], 'no partial or temporary object listed');
    });

    contract('write: a body longer than size is IncompleteBodyError and nothing is committed', async (up) => {
      await rejectsWith(up.write('/long.txt', bodyOf('1234567890'), { size: 4 }), 'DAVGATE_INCOMPLETE_BODY', 'long body, new file');
      await assertAbsent(up, '/long.txt', 'long body, new file');
      const old = await put(up, '/keep.txt', 'old content');
      await rejectsWith(up.write('/keep.txt', bodyOf('1234567890'), { size: 4 }), 'DAVGATE_INCOMPLETE_BODY', 'long body, overwrite');
      assert.equal(await content(up, '/keep.txt'), 'old content');
      assert.equal((await up.stat('/keep.txt')).validator, old.validator, 'old version still in place');
      assert.deepEqual(await namesIn(up, '/'), ['keep.txt'], 'no partial or temporary object listed');
    });

    contract('write: a body that errors mid-way rejects and nothing is committed', async (up) => {
      const abort = new Error('client went away');
      /** The write's rejection; the contract allows the body's own error or IncompleteBodyError. */
      const aborted = async (path: string, size: number | undefined): Promise<unknown> =>
        up.write(path, failingBody(pattern(1000), abort), { size }).then(
          () => assert.fail(`write(${path}, size ${size}) resolved although its body failed`),
          (e: unknown) => e,
        );
      const errors = [
        ['new, with size', await aborted('/aborted-sized', 5000)],
        ['new, without size', await aborted('/aborted-unsized', undefined)],
      ] as Array<[string, unknown]>;
      await assertAbsent(up, '/aborted-sized', 'aborted write with size');
      await assertAbsent(up, '/aborted-unsized', 'aborted write without size');
      const old = await put(up, '/keep', 'old content');
      errors.push(['overwrite, with size', await aborted('/keep', 5000)], ['overwrite, without size', await aborted('/keep', undefined)]);
      assert.equal(await content(up, '/keep'), 'old content');
      assert.equal((await up.stat('/keep')).validator, old.validator);
      assert.deepEqual(await namesIn(up, '/'), ['keep'], 'no partial or temporary object listed');
      for (const [what, err] of errors) {
        const ok = err === abort || (err instanceof DavgateError && err.code === 'DAVGATE_INCOMPLETE_BODY');
        assert.ok(ok, `${what}: expected the body's error or IncompleteBodyError, got ${describeError(err)}`);
      }
    });

    contract('large write (several S3 parts); a body failing after the first part commits nothing', async (up) => {
      const size = 17 * 1024 * 1024 + 123; // three parts at the default 8 MiB part size
      const data = pattern(size, 3);
      const e = await up.write('/big.bin', bodyOf(data, 256 * 1024), { size });
      assert.equal(e.size, size);
      assert.equal((await up.stat('/big.bin')).size, size);
      const mid = 8 * 1024 * 1024 - 100; // a range across a part boundary
      assert.deepEqual(await up.read('/big.bin', { offset: mid, length: 200, expectValidator: e.validator }), data.subarray(mid, mid + 200));
      assert.deepEqual(await up.read('/big.bin', { offset: size - 50, length: 100 }), data.subarray(size - 50));

      const abort = new Error('client went away after 9 MiB');
      const failing = (): Readable => {
        const first = data.subarray(0, 9 * 1024 * 1024);
        let off = 0;
        return new Readable({
          read() {
            if (off < first.length) {
              this.push(first.subarray(off, off + 256 * 1024));
              off += 256 * 1024;
            } else {
              setTimeout(() => this.destroy(abort), 20);
            }
          },
        });
      };
      const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => assert.fail('resolved although the body failed'), (err: unknown) => err);
      const errors: Array<[string, unknown]> = [['new file', await failure(up.write('/big-aborted.bin', failing(), { size }))]];
      await assertAbsent(up, '/big-aborted.bin', 'aborted large write');
      errors.push(['overwrite', await failure(up.write('/big.bin', failing(), { size }))]);
      assert.equal((await up.stat('/big.bin')).validator, e.validator, 'the old version stays');
      await rejectsWith(up.write('/big-long.bin', bodyOf(data, 256 * 1024), { size: 9 * 1024 * 1024 }), 'DAVGATE_INCOMPLETE_BODY', 'a large body longer than size');
      await assertAbsent(up, '/big-long.bin', 'a large body longer than size');
      assert.deepEqual(await namesIn(up, '/'), ['big.bin']);
      for (const [what, err] of errors) {
        const ok = err === abort || (err instanceof DavgateError && err.code === 'DAVGATE_INCOMPLETE_BODY');
        assert.ok(ok, `large ${what}: expected the body's error or IncompleteBodyError, got ${describeError(err)}`);
      }
    });

    contract('write is atomic: during a write readers see the old object and no temporary entry is listed', async (up) => {
      await up.mkdir('/d');
      await put(up, '/d/f', 'old content');
      for (const path of ['/d/f', '/d/g']) {
        const body = manualBody();
        const done = up.write(path, body, { size: 20 });
        body.push(bytes('0123456789'));
        await sleep(50);
        assert.deepEqual(await namesIn(up, '/d'), ['f'], `while writing ${path}`);
        if (path === '/d/f') assert.equal(await content(up, '/d/f'), 'old content', 'old object while being replaced');
        else await rejectsWith(up.stat('/d/g'), 'DAVGATE_NOT_FOUND', 'a file being created');
        body.push(bytes('abcdefghij'));
        body.push(null);
        const e = await done;
        assert.equal(e.size, 20);
        assert.equal(await content(up, path), '0123456789abcdefghij');
      }
      assert.deepEqual(await namesIn(up, '/d'), ['f', 'g']);
    });

    contract('zero-byte file: write, stat, list, read', async (up) => {
      const e = await up.write('/zero', bodyOf(''), { size: 0 });
      assert.equal(e.size, 0);
      assert.equal(e.kind, 'file');
      const s = await up.stat('/zero');
      assert.equal(s.kind, 'file');
      assert.equal(s.size, 0);
      const l = await listing(up, '/');
      assert.equal(l.get('zero')?.kind, 'file');
      assert.equal(l.get('zero')?.size, 0);
      assert.equal((await up.read('/zero', { offset: 0, length: 100 })).length, 0);
      assert.equal((await up.read('/zero', { offset: 0, length: 100, expectValidator: s.validator })).length, 0);
      const again = await up.write('/zero2', bodyOf(''));
      assert.equal(again.size, 0, 'also without a declared size');
    });

    // ---- names ----

    contract('unicode, space, #, %, ?, + in names: write, stat, list, read, mkdir, copy, move', async (up) => {
      const names = ['ünïcødé ✓.txt', 'with space.txt', 'hash#tag.txt', 'per%cent.txt', '100%25.txt', 'q?mark.txt', 'plus+sign.txt', 'emoji 😀.txt', '日本語'];
      const dir = '/dír #%25 ?';
      await up.mkdir(dir);
      assert.equal((await up.stat(dir)).kind, 'dir');
      for (const n of names) await put(up, joinPath(dir, n), `content of ${n}`);
      const l = await listing(up, dir);
      assert.deepEqual([...l.keys()].sort(), [...names].sort(), 'names listed exactly, decoded once');
      for (const n of names) {
        const p = joinPath(dir, n);
        const e = await up.stat(p);
        assert.equal(e.name, n);
        assert.equal(e.path, p);
        assert.equal(await content(up, p), `content of ${n}`);
      }
      assert.deepEqual(await namesIn(up, '/'), [nameOf(dir)]);
      await up.copy(joinPath(dir, 'hash#tag.txt'), '/copy %#?.txt', { overwrite: false });
      assert.equal(await content(up, '/copy %#?.txt'), 'content of hash#tag.txt');
      await up.move(joinPath(dir, 'per%cent.txt'), '/moved ü%20.txt', { overwrite: false });
      assert.equal(await content(up, '/moved ü%20.txt'), 'content of per%cent.txt');
      await assertAbsent(up, joinPath(dir, 'per%cent.txt'), 'moved away');
      await up.copy(dir, '/copied dír', { overwrite: false });
      assert.deepEqual(await namesIn(up, '/copied dír'), names.filter((n) => n !== 'per%cent.txt').sort());
      await up.remove(dir);
      await assertAbsent(up, dir, 'removed');
    });

    // ---- confinement (types.ts: "a backend must still confine them to its own root") ----

    contract('paths with ".." that would leave the root are refused with ForbiddenPathError', async (up) => {
      await put(up, '/f', 'x');
      await up.mkdir('/d');
      for (const p of ['/..', '/../escape', '/d/../../escape']) {
        await rejectsWith(up.stat(p), 'DAVGATE_FORBIDDEN_PATH', `stat(${p})`);
        await rejectsWith(collect(up.list(p)), 'DAVGATE_FORBIDDEN_PATH', `list(${p})`);
        await rejectsWith(up.read(p, { offset: 0, length: 10 }), 'DAVGATE_FORBIDDEN_PATH', `read(${p})`);
        await rejectsWith(put(up, p, 'escaped'), 'DAVGATE_FORBIDDEN_PATH', `write(${p})`);
        await rejectsWith(up.mkdir(p), 'DAVGATE_FORBIDDEN_PATH', `mkdir(${p})`);
        await rejectsWith(up.remove(p), 'DAVGATE_FORBIDDEN_PATH', `remove(${p})`);
        await rejectsWith(up.copy('/f', p, { overwrite: true }), 'DAVGATE_FORBIDDEN_PATH', `copy(/f, ${p})`);
        await rejectsWith(up.move(p, '/g', { overwrite: true }), 'DAVGATE_FORBIDDEN_PATH', `move(${p}, /g)`);
      }
      assert.deepEqual(await namesIn(up, '/'), ['d', 'f']);
      assert.equal(await content(up, '/f'), 'x');
    });

    // ---- mkdir ----

    contract('mkdir creates an empty directory that its parent lists', async (up) => {
      await up.mkdir('/m');
      await up.mkdir('/m/n');
      assert.equal((await up.stat('/m/n')).kind, 'dir');
      const l = await listing(up, '/m');
      assert.equal(l.get('n')?.kind, 'dir');
      assert.deepEqual(await namesIn(up, '/m/n'), []);
    });

    contract('mkdir of an existing path is ExistsError (directory, file, root)', async (up) => {
      await up.mkdir('/m');
      await put(up, '/f', 'x');
      await rejectsWith(up.mkdir('/m'), 'DAVGATE_EXISTS', 'mkdir(/m) again');
      await rejectsWith(up.mkdir('/f'), 'DAVGATE_EXISTS', 'mkdir over a file');
      await rejectsWith(up.mkdir('/'), 'DAVGATE_EXISTS', 'mkdir(/)');
      assert.equal(await content(up, '/f'), 'x', 'the file is untouched');
      assert.equal((await up.stat('/f')).kind, 'file');
    });

    contract('mkdir with a missing parent is ConflictError', async (up) => {
      await rejectsWith(up.mkdir('/no/such'), 'DAVGATE_CONFLICT', 'mkdir(/no/such)');
      await put(up, '/f', 'x');
      await rejectsWith(up.mkdir('/f/sub'), 'DAVGATE_CONFLICT', 'mkdir below a file');
      await assertAbsent(up, '/no', 'after the refused mkdir');
    });

    // ---- remove ----

    contract('remove a file: gone, siblings and parent stay', async (up) => {
      await up.mkdir('/d');
      await put(up, '/d/a', 'a');
      await put(up, '/d/b', 'b');
      await up.remove('/d/a');
      await assertAbsent(up, '/d/a', 'removed file');
      assert.equal(await content(up, '/d/b'), 'b');
      await up.remove('/d/b');
      assert.equal((await up.stat('/d')).kind, 'dir', 'the emptied parent still exists');
      assert.deepEqual(await namesIn(up, '/d'), []);
    });

    contract('remove a tree (nested, 30 files); neighbours with a shared name prefix stay', async (up) => {
      await up.mkdir('/t');
      await up.mkdir('/t/a');
      await up.mkdir('/t/a/b');
      await up.mkdir('/t/empty');
      const files: string[] = [];
      for (let i = 0; i < 10; i++) files.push(`/t/f${i}`, `/t/a/f${i}`, `/t/a/b/f${i}`);
      await inBatches(files, 10, (p) => put(up, p, p));
      await put(up, '/t2', 'neighbour file');
      await up.mkdir('/t.d');
      await put(up, '/t.d/x', 'neighbour dir');
      await up.remove('/t');
      await assertAbsent(up, '/t', 'removed tree');
      await rejectsWith(up.stat('/t/a/b/f3'), 'DAVGATE_NOT_FOUND', 'a file deep in the removed tree');
      await rejectsWith(collect(up.list('/t/a')), 'DAVGATE_NOT_FOUND', 'list of a removed subdirectory');
      assert.deepEqual(await namesIn(up, '/'), ['t.d', 't2']);
      assert.equal(await content(up, '/t2'), 'neighbour file');
      assert.equal(await content(up, '/t.d/x'), 'neighbour dir');
    });

    contract('remove of an empty directory', async (up) => {
      await up.mkdir('/e');
      await up.remove('/e');
      await assertAbsent(up, '/e', 'removed empty dir');
    });

    contract('remove of a missing path is NotFoundError', async (up) => {
      await rejectsWith(up.remove('/missing'), 'DAVGATE_NOT_FOUND', 'remove(/missing)');
      await rejectsWith(up.remove('/missing/deeper'), 'DAVGATE_NOT_FOUND', 'remove(/missing/deeper)');
    });

    // ---- move ----

    contract('move a file: destination has the content, source is gone', async (up) => {
      await up.mkdir('/d');
      await put(up, '/src.txt', 'moving');
      await up.move('/src.txt', '/d/dst.txt', { overwrite: false });
      await assertAbsent(up, '/src.txt', 'move source');
      assert.equal(await content(up, '/d/dst.txt'), 'moving');
      assert.equal((await up.stat('/d/dst.txt')).size, 6);
    });

    contract('move onto an existing file: overwrite=false is ExistsError, true replaces', async (up) => {
      await put(up, '/a', 'aaa');
      await put(up, '/b', 'bbbbb');
      await rejectsWith(up.move('/a', '/b', { overwrite: false }), 'DAVGATE_EXISTS', 'move without overwrite');
      assert.equal(await content(up, '/a'), 'aaa', 'source untouched');
      assert.equal(await content(up, '/b'), 'bbbbb', 'destination untouched');
      await up.move('/a', '/b', { overwrite: true });
      await assertAbsent(up, '/a', 'move source');
      assert.equal(await content(up, '/b'), 'aaa');
      assert.equal((await up.stat('/b')).size, 3);
    });

    contract('move a directory tree: every descendant moves, source is gone', async (up) => {
      await up.mkdir('/s');
      await up.mkdir('/s/sub');
      await up.mkdir('/s/empty');
      await put(up, '/s/f', 'f');
      await put(up, '/s/sub/g', 'g');
      await up.move('/s', '/t', { overwrite: false });
      await assertAbsent(up, '/s', 'moved dir');
      assert.deepEqual(await namesIn(up, '/t'), ['empty', 'f', 'sub']);
      assert.deepEqual(await namesIn(up, '/t/sub'), ['g']);
      assert.deepEqual(await namesIn(up, '/t/empty'), []);
      assert.equal(await content(up, '/t/sub/g'), 'g');
      assert.deepEqual(await namesIn(up, '/'), ['t']);
    });

    contract('move a directory onto an existing one: false is ExistsError, true replaces (no merge)', async (up) => {
      await up.mkdir('/s');
      await put(up, '/s/new', 'new');
      await up.mkdir('/t');
      await put(up, '/t/old', 'old');
      await rejectsWith(up.move('/s', '/t', { overwrite: false }), 'DAVGATE_EXISTS', 'move dir without overwrite');
      assert.deepEqual(await namesIn(up, '/t'), ['old']);
      assert.deepEqual(await namesIn(up, '/s'), ['new']);
      await up.move('/s', '/t', { overwrite: true });
      assert.deepEqual(await namesIn(up, '/t'), ['new'], 'the destination directory was replaced, not merged');
      await assertAbsent(up, '/s', 'moved dir');
      await put(up, '/file', 'a file');
      await up.mkdir('/u');
      await up.move('/u', '/file', { overwrite: true });
      assert.equal((await up.stat('/file')).kind, 'dir', 'a file destination replaced by a directory');
    });

    contract('move with a missing destination parent is ConflictError; the source stays', async (up) => {
      await put(up, '/f', 'x');
      await up.mkdir('/d');
      await rejectsWith(up.move('/f', '/no/f', { overwrite: false }), 'DAVGATE_CONFLICT', 'move file to a missing parent');
      await rejectsWith(up.move('/d', '/no/d', { overwrite: true }), 'DAVGATE_CONFLICT', 'move dir to a missing parent');
      assert.equal(await content(up, '/f'), 'x');
      assert.equal((await up.stat('/d')).kind, 'dir');
      await assertAbsent(up, '/no', 'after the refused moves');
    });

    contract('move of a missing source is NotFoundError', async (up) => {
      await rejectsWith(up.move('/missing', '/x', { overwrite: false }), 'DAVGATE_NOT_FOUND', 'move(/missing)');
      await assertAbsent(up, '/x', 'no destination created');
    });

    // ---- copy ----

    contract('copy a file: both exist; overwrite=false on existing is ExistsError, true replaces', async (up) => {
      await up.mkdir('/d');
      const src = await put(up, '/src', 'copied');
      await up.copy('/src', '/d/dst', { overwrite: false });
      assert.equal(await content(up, '/src'), 'copied');
      assert.equal(await content(up, '/d/dst'), 'copied');
      assert.equal((await up.stat('/src')).validator, src.validator, 'the source is unchanged');
      await put(up, '/other', 'other content');
      await rejectsWith(up.copy('/src', '/other', { overwrite: false }), 'DAVGATE_EXISTS', 'copy without overwrite');
      assert.equal(await content(up, '/other'), 'other content');
      await up.copy('/src', '/other', { overwrite: true });
      assert.equal(await content(up, '/other'), 'copied');
      assert.equal((await up.stat('/other')).size, 6);
    });

    contract('copy a directory deep: the whole tree is duplicated, source intact', async (up) => {
      await up.mkdir('/s');
      await up.mkdir('/s/a');
      await up.mkdir('/s/a/b');
      await up.mkdir('/s/empty');
      await put(up, '/s/f', 'f');
      await put(up, '/s/a/g', 'g');
      await put(up, '/s/a/b/h', 'h');
      await up.copy('/s', '/c', { overwrite: false });
      for (const root of ['/s', '/c']) {
        assert.deepEqual(await namesIn(up, root), ['a', 'empty', 'f']);
        assert.deepEqual(await namesIn(up, `${root}/a`), ['b', 'g']);
        assert.deepEqual(await namesIn(up, `${root}/a/b`), ['h']);
        assert.deepEqual(await namesIn(up, `${root}/empty`), []);
        assert.equal(await content(up, `${root}/a/b/h`), 'h');
      }
      await put(up, '/c/a/g', 'changed'); // a copy, not a link
      assert.equal(await content(up, '/s/a/g'), 'g');
    });

    contract('copy a directory shallow: only the collection itself', async (up) => {
      await up.mkdir('/s');
      await up.mkdir('/s/sub');
      await put(up, '/s/f', 'f');
      await up.copy('/s', '/c', { overwrite: false, shallow: true });
      assert.equal((await up.stat('/c')).kind, 'dir');
      assert.deepEqual(await namesIn(up, '/c'), []);
      assert.deepEqual(await namesIn(up, '/s'), ['f', 'sub']);
    });

    contract('copy a directory onto an existing one: false is ExistsError, true replaces (no merge)', async (up) => {
      await up.mkdir('/s');
      await put(up, '/s/new', 'new');
      await up.mkdir('/t');
      await put(up, '/t/old', 'old');
      await rejectsWith(up.copy('/s', '/t', { overwrite: false }), 'DAVGATE_EXISTS', 'copy dir without overwrite');
      assert.deepEqual(await namesIn(up, '/t'), ['old']);
      await up.copy('/s', '/t', { overwrite: true });
      assert.deepEqual(await namesIn(up, '/t'), ['new'], 'the destination directory was replaced, not merged');
      assert.deepEqual(await namesIn(up, '/s'), ['new']);
    });

    contract('copy with a missing destination parent is ConflictError; copy of a missing source is NotFoundError', async (up) => {
      await put(up, '/f', 'x');
      await up.mkdir('/d');
      await rejectsWith(up.copy('/f', '/no/f', { overwrite: false }), 'DAVGATE_CONFLICT', 'copy file to a missing parent');
      await rejectsWith(up.copy('/d', '/no/d', { overwrite: false }), 'DAVGATE_CONFLICT', 'copy dir to a missing parent');
      await rejectsWith(up.copy('/missing', '/x', { overwrite: false }), 'DAVGATE_NOT_FOUND', 'copy(/missing)');
      await assertAbsent(up, '/no', 'after the refused copies');
      await assertAbsent(up, '/x', 'after the refused copy');
    });

    // ---- optional operations ----

    contract('quota: where present, answers with finite, non-negative figures', async (up) => {
      if (!up.quota) return;
      const q = await up.quota('/');
      assert.ok(Number.isFinite(q.availableBytes) && q.availableBytes >= 0, `availableBytes ${q.availableBytes}`);
      assert.ok(Number.isFinite(q.usedBytes) && q.usedBytes >= 0, `usedBytes ${q.usedBytes}`);
    });

    contract('setMtime: where present, sets it', async (up) => {
      if (!up.setMtime) return;
      await put(up, '/f', 'x');
      const when = Date.UTC(2001, 0, 2, 3, 4, 5);
      await up.setMtime('/f', when);
      const e = await up.stat('/f');
      assert.ok(Math.abs(e.mtimeMs - when) < 1000, `mtimeMs ${e.mtimeMs}, expected ${when}`);
      assert.equal(await content(up, '/f'), 'x');
      await rejectsWith(up.setMtime('/missing', when), 'DAVGATE_NOT_FOUND', 'setMtime(/missing)');
    });

    // ---- validators ----

    contract('validator: stable while nothing changes, identical from write, stat and list', async (up) => {
      await up.mkdir('/d');
      const w = await put(up, '/d/f', 'stable');
      const s1 = await up.stat('/d/f');
      await up.read('/d/f', { offset: 0, length: 100 });
      await put(up, '/d/other', 'a sibling changes');
      await up.mkdir('/d/sub');
      const s2 = await up.stat('/d/f');
      const l = (await listing(up, '/d')).get('f');
      assert.equal(s1.validator, w.validator, 'write vs stat');
      assert.equal(s2.validator, s1.validator, 'stat twice (reads and siblings in between)');
      assert.equal(l?.validator, s1.validator, 'list vs stat');
      assert.equal(l?.size, s1.size, 'list vs stat: size');
    });

    contract('validator of a directory: list and stat agree', async (up) => {
      await up.mkdir('/d');
      await up.mkdir('/d/sub');
      await put(up, '/d/sub/f', 'x');
      const s = await up.stat('/d/sub');
      const l = (await listing(up, '/d')).get('sub');
      assert.equal(l?.kind, 'dir');
      assert.equal(l?.validator, s.validator, 'list vs stat of the same directory');
    });

    contract('validator changes on every overwrite and a moved-over file reads with the new one', async (up) => {
      const seen = new Set<string>();
      for (const c of ['one', 'two', 'three', 'four', 'ONE']) seen.add((await put(up, '/f', c)).validator);
      assert.equal(seen.size, 5, 'five different contents, five validators');
      await put(up, '/g', 'from g');
      const before = (await up.stat('/f')).validator;
      await up.move('/g', '/f', { overwrite: true });
      const after = await up.stat('/f');
      assert.notEqual(after.validator, before, 'replacement by move changes the validator');
      assert.equal((await up.read('/f', { offset: 0, length: 100, expectValidator: after.validator })).toString(), 'from g');
    });

    // ---- errors ----

    contract('errors are DavgateError instances with a known code, never raw system or SDK errors', async (up) => {
      await put(up, '/f', 'x');
      await up.mkdir('/d');
      const failing: Array<[string, () => Promise<unknown>, ErrorCode]> = [
        ['stat missing', () => up.stat('/missing'), 'DAVGATE_NOT_FOUND'],
        ['list missing', () => collect(up.list('/missing')), 'DAVGATE_NOT_FOUND'],
        ['list file', () => collect(up.list('/f')), 'DAVGATE_NOT_A_DIRECTORY'],
        ['read missing', () => up.read('/missing', { offset: 0, length: 1 }), 'DAVGATE_NOT_FOUND'],
        ['write no parent', () => put(up, '/missing/f', 'x'), 'DAVGATE_CONFLICT'],
        ['write short', () => up.write('/s', bodyOf('x'), { size: 2 }), 'DAVGATE_INCOMPLETE_BODY'],
        ['mkdir exists', () => up.mkdir('/d'), 'DAVGATE_EXISTS'],
        ['mkdir no parent', () => up.mkdir('/missing/d'), 'DAVGATE_CONFLICT'],
        ['remove missing', () => up.remove('/missing'), 'DAVGATE_NOT_FOUND'],
        ['move missing', () => up.move('/missing', '/y', { overwrite: false }), 'DAVGATE_NOT_FOUND'],
        ['move exists', () => up.move('/f', '/d', { overwrite: false }), 'DAVGATE_EXISTS'],
        ['copy missing', () => up.copy('/missing', '/y', { overwrite: false }), 'DAVGATE_NOT_FOUND'],
        ['copy no parent', () => up.copy('/f', '/missing/y', { overwrite: false }), 'DAVGATE_CONFLICT'],
      ];
      for (const [what, fn, code] of failing) {
        const e = await rejectsWith(fn(), code, what);
        assert.ok(e.code in STATUS_BY_CODE, `${what}: code ${e.code} is mapped to a status`);
        assert.equal(e.name, e.constructor.name, `${what}: name is the class name`);
      }
    });

    it('every known defect names a case of this suite', () => {
      for (const title of Object.keys(knownDefects)) assert.ok(titles.has(title), `no case titled ${JSON.stringify(title)}`);
    });
  });
}
