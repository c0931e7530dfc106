// WebDavUpstream against real WebDAV servers (nginx + dav-ext, Apache mod_dav) and, for the
// status and XML corner cases no real server produces on demand, a small fake server.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, readdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { DavgateError } from '../../src/errors.js';
import type { Entry } from '../../src/upstream/types.js';
import { WebDavUpstream } from '../../src/upstream/webdav/upstream.js';
import { haveApacheDav, haveNginxDav, startApacheDav, startNginxDav, type DavServer } from '../helpers/dav-servers.js';

const code = (c: string) => (e: unknown) => {
  assert.ok(e instanceof DavgateError, `expected a DavgateError, got ${String(e)}`);
  assert.equal(e.code, c, (e as Error).message);
  return true;
};

const body = (s: string | Buffer) => Readable.from([Buffer.from(s)]);

async function all(it: AsyncIterable<Entry>): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

const names = (es: Entry[]) => es.map((e) => e.name).sort();

/** A body that sends `first`, then fails (a client that hangs up mid-upload). */
function abortingBody(first: Buffer, err: Error, delayMs = 100): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (sent) return;
      sent = true;
      this.push(first);
      setTimeout(() => this.destroy(err), delayMs);
    },
  });
}

/** A body that sends `first` and then stalls until `release()` (to look at in-flight uploads). */
function stallingBody(first: Buffer, rest: Buffer): { stream: Readable; release: () => void } {
  let sent = false;
  let release = () => {};
  const stream = new Readable({
    read() {
      if (sent) return;
      sent = true;
      this.push(first);
      release = () => { this.push(rest); this.push(null); };
    },
  });
  return { stream, release: () => release() };
}

const servers: Array<{ kind: string; have: () => boolean; start: () => Promise<DavServer> }> = [
  { kind: 'nginx', have: haveNginxDav, start: () => startNginxDav() },
  // Apache with a path prefix in the base URL.
  { kind: 'apache', have: haveApacheDav, start: () => startApacheDav({ basePath: '/dav/' }) },
];

for (const s of servers) {
  describe(`WebDavUpstream against ${s.kind}`, { skip: !s.have() && `${s.kind} WebDAV not installed (scripts/test-deps.sh)` }, () => {
    let srv: DavServer;
    let up: WebDavUpstream;

    before(async () => {
      srv = await s.start();
      up = new WebDavUpstream({ url: srv.url });
    });
    after(async () => {
      await up?.close();
      await srv?.stop();
    });

    it('identifies itself by URL; no setMtime, no quota unless configured', () => {
      assert.equal(up.id, 'webdav:' + srv.url);
      assert.ok(!('setMtime' in up));
      assert.equal(up.quota, undefined);
    });

    it('stats the root, files and absent paths', async () => {
      const root = await up.stat('/');
      assert.equal(root.kind, 'dir');
      assert.equal(root.path, '/');
      await srv.seed('st.txt', 'twelve bytes');
      const f = await up.stat('/st.txt');
      assert.equal(f.kind, 'file');
      assert.equal(f.name, 'st.txt');
      assert.equal(f.size, 12);
      assert.ok(Math.abs(f.mtimeMs - Date.now()) < 60_000, `mtime ${f.mtimeMs}`);
      // nginx's dav-ext reports no getetag: the validator is Last-Modified + size there.
      if (s.kind === 'nginx') assert.match(f.validator, /^lastmodified:\d+:12$/);
      else assert.match(f.validator, /^"[^"]+":\d+:12$/);
      await assert.rejects(up.stat('/nope'), code('DAVGATE_NOT_FOUND'));
      await assert.rejects(up.stat('/st.txt/below'), code('DAVGATE_NOT_FOUND'));
      await assert.rejects(up.stat('/a/../b'), code('DAVGATE_FORBIDDEN_PATH'));
    });

    it('writes, then reads ranges (206 sliced, past the end empty)', async () => {
      const data = Buffer.from('0123456789abcdefghij');
      const e = await up.write('/r.bin', body(data), { size: data.length });
      assert.equal(e.size, 20);
      assert.equal(e.kind, 'file');
      assert.deepEqual(await up.read('/r.bin', { offset: 0, length: 5 }), data.subarray(0, 5));
      assert.deepEqual(await up.read('/r.bin', { offset: 5, length: 5, expectValidator: e.validator }), data.subarray(5, 10));
      assert.deepEqual(await up.read('/r.bin', { offset: 15, length: 100, expectValidator: e.validator }), data.subarray(15));
      assert.equal((await up.read('/r.bin', { offset: 20, length: 10 })).length, 0);
      assert.equal((await up.read('/r.bin', { offset: 500, length: 10, expectValidator: e.validator })).length, 0);
      assert.equal((await up.read('/r.bin', { offset: 3, length: 0 })).length, 0);
      await assert.rejects(up.read('/r.bin', { offset: -1, length: 3 }), code('DAVGATE_BAD_RANGE'));
      await assert.rejects(up.read('/none.bin', { offset: 0, length: 3 }), code('DAVGATE_NOT_FOUND'));
      await up.mkdir('/rdir');
      await assert.rejects(up.read('/rdir', { offset: 0, length: 3 }), code('DAVGATE_IS_A_DIRECTORY'));
    });

    it('refuses to read another version than the validator names', async () => {
      const v1 = await up.write('/v.txt', body('version one'), { size: 11 });
      const v2 = await up.write('/v.txt', body('version two, longer'), { size: 19 });
      assert.notEqual(v1.validator, v2.validator);
      await assert.rejects(up.read('/v.txt', { offset: 0, length: 4, expectValidator: v1.validator }), code('DAVGATE_PRECONDITION_FAILED'));
      assert.equal((await up.read('/v.txt', { offset: 0, length: 7, expectValidator: v2.validator })).toString(), 'version');
      // A validator of a form this backend does not write is checked against a fresh stat.
      await assert.rejects(up.read('/v.txt', { offset: 0, length: 4, expectValidator: 'something-else' }), code('DAVGATE_PRECONDITION_FAILED'));
    });

    it('tells same-size rewrites within one second apart (nginx: Last-Modified has 1 s resolution)', async () => {
      const seen = new Set<string>();
      const validators: string[] = [];
      for (const c of ['aaa', 'bbb', 'ccc', 'dddd', 'aaa']) {
        const e = await up.write('/same.txt', body(c), { size: c.length });
        validators.push(e.validator);
        seen.add(e.validator);
      }
      assert.equal(seen.size, 5, validators.join(' '));
      const last = validators.at(-1) ?? '';
      assert.equal((await up.stat('/same.txt')).validator, last);
      assert.equal((await all(up.list('/'))).find((e) => e.name === 'same.txt')?.validator, last);
      assert.equal((await up.read('/same.txt', { offset: 0, length: 3, expectValidator: last })).toString(), 'aaa');
      for (const old of validators.slice(0, -1)) {
        await assert.rejects(up.read('/same.txt', { offset: 0, length: 3, expectValidator: old }), code('DAVGATE_PRECONDITION_FAILED'), old);
      }
      if (s.kind === 'nginx') assert.ok(validators.some((v) => /:g\d+$/.test(v)), 'nginx needed generations');
    });

    it('keeps a stable validator while Apache turns a fresh weak ETag strong', async () => {
      const e = await up.write('/fresh.txt', body('fresh'), { size: 5 });
      assert.equal((await up.read('/fresh.txt', { offset: 0, length: 5, expectValidator: e.validator })).toString(), 'fresh');
      await new Promise((r) => setTimeout(r, 1200));
      const later = await up.stat('/fresh.txt');
      assert.equal(later.validator, e.validator);
      assert.equal((await up.read('/fresh.txt', { offset: 1, length: 3, expectValidator: later.validator })).toString(), 'res');
    });

    it('round-trips awkward names', async () => {
      await up.mkdir('/names');
      const awkward = ['a b.txt', 'ünïcödé ✓.txt', '100%.txt', 'hash#q?.txt', 'amp&semi;.txt', "quote'\".txt", 'plus+=.txt'];
      for (const n of awkward) {
        const e = await up.write(`/names/${n}`, body(n), { size: Buffer.byteLength(n) });
        assert.equal(e.name, n);
        assert.equal((await up.read(`/names/${n}`, { offset: 0, length: 1000 })).toString(), n);
      }
      const listed = await all(up.list('/names'));
      assert.deepEqual(names(listed), [...awkward].sort());
      for (const e of listed) assert.equal(e.path, `/names/${e.name}`);
      assert.deepEqual((await readdir(join(srv.root, 'names'))).sort(), [...awkward].sort());
    });

    it('lists children (not the collection itself) with kinds and sizes', async () => {
      await up.mkdir('/l');
      await up.mkdir('/l/sub');
      await up.write('/l/one', body('1'), { size: 1 });
      await up.write('/l/three', body('333'), { size: 3 });
      const es = await all(up.list('/l'));
      assert.deepEqual(names(es), ['one', 'sub', 'three']);
      const by = new Map(es.map((e) => [e.name, e]));
      assert.equal(by.get('sub')?.kind, 'dir');
      assert.equal(by.get('sub')?.size, 0);
      assert.equal(by.get('three')?.size, 3);
      assert.equal(by.get('three')?.path, '/l/three');
      assert.deepEqual(await all(up.list('/l/sub')), []);
      const root = await all(up.list('/'));
      assert.ok(root.some((e) => e.name === 'l' && e.kind === 'dir'));
      assert.ok(!root.some((e) => e.name === '' || e.path === '/'));
      await assert.rejects(all(up.list('/l/missing')), code('DAVGATE_NOT_FOUND'));
      await assert.rejects(all(up.list('/l/one')), code('DAVGATE_NOT_A_DIRECTORY'));
    });

    it('streams a listing of 2,000 entries, and stops cleanly when the consumer does', async () => {
      await srv.seed('big', null);
      for (let i = 0; i < 2000; i++) await srv.seed(`big/file-${String(i).padStart(5, '0')}.dat`, String(i));
      const t0 = Date.now();
      let first = -1;
      const seen: string[] = [];
      for await (const e of up.list('/big')) {
        if (first < 0) first = Date.now() - t0;
        seen.push(e.name);
        assert.equal(e.kind, 'file');
      }
      assert.equal(seen.length, 2000);
      assert.equal(new Set(seen).size, 2000);
      assert.ok(seen.includes('file-00000.dat') && seen.includes('file-01999.dat'));
      let n = 0;
      for await (const _ of up.list('/big')) if (++n === 10) break;
      assert.equal(n, 10);
      // The pool is still healthy after an abandoned listing.
      assert.equal((await up.stat('/big')).kind, 'dir');
    });

    it('write: missing parent, directory target, root', async () => {
      await assert.rejects(up.write('/nodir/x', body('x'), { size: 1 }), code('DAVGATE_CONFLICT'));
      await up.write('/plain', body('p'), { size: 1 });
      await assert.rejects(up.write('/plain/x', body('x'), { size: 1 }), code('DAVGATE_CONFLICT'));
      await up.mkdir('/wdir');
      await assert.rejects(up.write('/wdir', body('x'), { size: 1 }), code('DAVGATE_IS_A_DIRECTORY'));
      await assert.rejects(up.write('/', body('x'), { size: 1 }), code('DAVGATE_IS_A_DIRECTORY'));
      await assert.rejects(up.stat('/nodir'), code('DAVGATE_NOT_FOUND'));
    });

    it('write: streams bodies of unknown size (chunked) and large bodies', async () => {
      const chunks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(64 * 1024, i));
      const e = await up.write('/big.bin', Readable.from(chunks));
      assert.equal(e.size, 64 * 64 * 1024);
      assert.deepEqual(await up.read('/big.bin', { offset: 64 * 1024 * 10 - 2, length: 4 }), Buffer.from([9, 9, 10, 10]));
      assert.deepEqual(await readFile(join(srv.root, 'big.bin')), Buffer.concat(chunks));
    });

    it('write: a body shorter or longer than size commits nothing', async () => {
      await assert.rejects(up.write('/short', body('abc'), { size: 10 }), code('DAVGATE_INCOMPLETE_BODY'));
      await assert.rejects(up.write('/long', body('abcdef'), { size: 3 }), code('DAVGATE_INCOMPLETE_BODY'));
      await new Promise((r) => setTimeout(r, 200));
      await assert.rejects(up.stat('/short'), code('DAVGATE_NOT_FOUND'));
      await assert.rejects(up.stat('/long'), code('DAVGATE_NOT_FOUND'));
      await up.write('/keep', body('old content'), { size: 11 });
      await assert.rejects(up.write('/keep', body('new'), { size: 20 }), code('DAVGATE_INCOMPLETE_BODY'));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await up.read('/keep', { offset: 0, length: 100 })).toString(), 'old content');
    });

    it('write: a client abort aborts the upstream PUT (nothing committed, old file intact)', async () => {
      const boom = new Error('client went away');
      await assert.rejects(up.write('/aborted', abortingBody(Buffer.alloc(100_000, 1), boom), { size: 1_000_000 }), (e) => e === boom);
      await assert.rejects(up.write('/aborted2', abortingBody(Buffer.alloc(100_000, 1), boom)), (e) => e === boom);
      await up.write('/kept', body('still here'), { size: 10 });
      await assert.rejects(up.write('/kept', abortingBody(Buffer.alloc(100_000, 2), boom), { size: 1_000_000 }), (e) => e === boom);
      await new Promise((r) => setTimeout(r, 300));
      await assert.rejects(up.stat('/aborted'), code('DAVGATE_NOT_FOUND'));
      await assert.rejects(up.stat('/aborted2'), code('DAVGATE_NOT_FOUND'));
      assert.equal((await up.read('/kept', { offset: 0, length: 100 })).toString(), 'still here');
    });

    it('write: an upload in flight is never listed, nor visible under its name', async () => {
      await up.mkdir('/inflight');
      await up.write('/inflight/existing', body('old'), { size: 3 });
      const { stream, release } = stallingBody(Buffer.alloc(200_000, 7), Buffer.alloc(56, 7));
      const writing = up.write('/inflight/new', stream, { size: 200_056 });
      await new Promise((r) => setTimeout(r, 400));
      assert.deepEqual(names(await all(up.list('/inflight'))), ['existing']);
      await assert.rejects(up.stat('/inflight/new'), code('DAVGATE_NOT_FOUND'));
      release();
      assert.equal((await writing).size, 200_056);
      assert.deepEqual(names(await all(up.list('/inflight'))), ['existing', 'new']);
    });

    it('mkdir: created, exists (dir or file), missing parent, root', async () => {
      await up.mkdir('/m');
      assert.equal((await up.stat('/m')).kind, 'dir');
      await assert.rejects(up.mkdir('/m'), code('DAVGATE_EXISTS'));
      await up.write('/mfile', body('f'), { size: 1 });
      await assert.rejects(up.mkdir('/mfile'), code('DAVGATE_EXISTS'));
      await assert.rejects(up.mkdir('/nope/m'), code('DAVGATE_CONFLICT'));
      await assert.rejects(up.mkdir('/'), code('DAVGATE_EXISTS'));
    });

    it('remove: files, whole trees, absent paths, the root', async () => {
      await up.mkdir('/rm');
      await up.mkdir('/rm/a');
      await up.write('/rm/a/f', body('f'), { size: 1 });
      await up.write('/rm/g', body('g'), { size: 1 });
      await up.remove('/rm/g');
      await assert.rejects(up.stat('/rm/g'), code('DAVGATE_NOT_FOUND'));
      await up.remove('/rm');
      await assert.rejects(up.stat('/rm'), code('DAVGATE_NOT_FOUND'));
      await assert.rejects(up.remove('/rm'), code('DAVGATE_NOT_FOUND'));
      await assert.rejects(up.remove('/'), code('DAVGATE_FORBIDDEN_PATH'));
    });

    it('move: rename, overwrite rules, collections, missing parent, into itself', async () => {
      await up.mkdir('/mv');
      await up.write('/mv/a', body('A'), { size: 1 });
      await up.move('/mv/a', '/mv/b', { overwrite: false });
      await assert.rejects(up.stat('/mv/a'), code('DAVGATE_NOT_FOUND'));
      assert.equal((await up.read('/mv/b', { offset: 0, length: 10 })).toString(), 'A');

      await up.write('/mv/c', body('C'), { size: 1 });
      await assert.rejects(up.move('/mv/c', '/mv/b', { overwrite: false }), code('DAVGATE_EXISTS'));
      assert.equal((await up.read('/mv/b', { offset: 0, length: 10 })).toString(), 'A');
      await up.move('/mv/c', '/mv/b', { overwrite: true });
      assert.equal((await up.read('/mv/b', { offset: 0, length: 10 })).toString(), 'C');

      // A collection over an existing collection: the destination is replaced, not merged.
      await up.mkdir('/mv/d1');
      await up.write('/mv/d1/x', body('x'), { size: 1 });
      await up.mkdir('/mv/d2');
      await up.write('/mv/d2/y', body('y'), { size: 1 });
      await assert.rejects(up.move('/mv/d1', '/mv/d2', { overwrite: false }), code('DAVGATE_EXISTS'));
      await up.move('/mv/d1', '/mv/d2', { overwrite: true });
      assert.deepEqual(names(await all(up.list('/mv/d2'))), ['x']);
      // A file over a collection (nginx alone would answer 409), and a collection over a file.
      await up.move('/mv/b', '/mv/d2', { overwrite: true });
      assert.equal((await up.stat('/mv/d2')).kind, 'file');
      await up.mkdir('/mv/d3');
      await up.move('/mv/d3', '/mv/d2', { overwrite: true });
      assert.equal((await up.stat('/mv/d2')).kind, 'dir');

      // nginx would create the missing parent on MOVE of a file, and recurse into itself.
      await up.write('/mv/e', body('e'), { size: 1 });
      await assert.rejects(up.move('/mv/e', '/mv/nope/e', { overwrite: false }), code('DAVGATE_CONFLICT'));
      await assert.rejects(up.stat('/mv/nope'), code('DAVGATE_NOT_FOUND'));
      await assert.rejects(up.move('/mv/d2', '/mv/d2/inner', { overwrite: false }), code('DAVGATE_CONFLICT'));
      assert.equal((await up.stat('/mv/d2')).kind, 'dir');
      await assert.rejects(up.move('/mv/ghost', '/mv/g2', { overwrite: false }), code('DAVGATE_NOT_FOUND'));
      await assert.rejects(up.move('/mv/e', '/mv/e', { overwrite: true }), code('DAVGATE_FORBIDDEN_PATH'));
      await assert.rejects(up.move('/', '/x', { overwrite: true }), code('DAVGATE_FORBIDDEN_PATH'));
      // A whole tree moves.
      await up.mkdir('/mv/t');
      await up.mkdir('/mv/t/u');
      await up.write('/mv/t/u/v', body('v'), { size: 1 });
      await up.move('/mv/t', '/mv/t2', { overwrite: false });
      assert.equal((await up.read('/mv/t2/u/v', { offset: 0, length: 1 })).toString(), 'v');
    });

    it('copy: files, deep and shallow trees, overwrite rules', async () => {
      await up.mkdir('/cp');
      await up.write('/cp/f', body('file'), { size: 4 });
      await up.copy('/cp/f', '/cp/g', { overwrite: false });
      assert.equal((await up.read('/cp/g', { offset: 0, length: 10 })).toString(), 'file');
      assert.equal((await up.read('/cp/f', { offset: 0, length: 10 })).toString(), 'file');
      await up.write('/cp/h', body('hhh'), { size: 3 });
      await assert.rejects(up.copy('/cp/h', '/cp/g', { overwrite: false }), code('DAVGATE_EXISTS'));
      await up.copy('/cp/h', '/cp/g', { overwrite: true });
      assert.equal((await up.read('/cp/g', { offset: 0, length: 10 })).toString(), 'hhh');

      await up.mkdir('/cp/t');
      await up.mkdir('/cp/t/sub');
      await up.write('/cp/t/sub/deep', body('deep'), { size: 4 });
      await up.copy('/cp/t', '/cp/deep', { overwrite: false });
      assert.equal((await up.read('/cp/deep/sub/deep', { offset: 0, length: 10 })).toString(), 'deep');
      // Shallow: the collection only (nginx ignores Depth: 0 on COPY; the backend makes it so).
      await up.copy('/cp/t', '/cp/shallow', { overwrite: false, shallow: true });
      assert.equal((await up.stat('/cp/shallow')).kind, 'dir');
      assert.deepEqual(await all(up.list('/cp/shallow')), []);
      await assert.rejects(up.copy('/cp/t', '/cp/shallow', { overwrite: false, shallow: true }), code('DAVGATE_EXISTS'));
      await assert.rejects(up.copy('/cp/f', '/cp/none/f', { overwrite: false }), code('DAVGATE_CONFLICT'));
      await assert.rejects(up.copy('/cp/t', '/cp/t/sub/x', { overwrite: false }), code('DAVGATE_CONFLICT'));
      await assert.rejects(up.copy('/cp/ghost', '/cp/x', { overwrite: false }), code('DAVGATE_NOT_FOUND'));
    });

    it('quota: only when configured', async () => {
      assert.equal(up.quota, undefined);
      const q = new WebDavUpstream({ url: srv.url, quotaBytes: 5_000_000 });
      try {
        assert.equal(typeof q.quota, 'function');
        assert.deepEqual(await q.quota!('/'), { availableBytes: 5_000_000, usedBytes: 0 });
      } finally {
        await q.close();
      }
    });
  });
}

describe('WebDavUpstream with Basic auth (Apache, pass-through identities)', { skip: !haveApacheDav() && 'apache2 not installed' }, () => {
  let srv: DavServer;
  let anon: WebDavUpstream;
  const basic = (u: string, p: string) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
  const alice = { authorization: basic('alice', 'alice-secret') };
  const bob = { authorization: basic('bob', 'bob-secret') };

  before(async () => {
    srv = await startApacheDav({ users: { alice: 'alice-secret', bob: 'bob-secret' }, privateFor: 'alice' });
    anon = new WebDavUpstream({ url: srv.url, passThroughAuth: true });
  });
  after(async () => {
    await anon?.close();
    await srv?.stop();
  });

  it('401 without credentials, success with them', async () => {
    await assert.rejects(anon.stat('/'), code('DAVGATE_UNAUTHORIZED'));
    await assert.rejects(anon.stat('/', { authorization: basic('alice', 'wrong') }), code('DAVGATE_UNAUTHORIZED'));
    assert.equal((await anon.stat('/', alice)).kind, 'dir');
    await anon.write('/shared.txt', body('for everyone'), { size: 12 }, bob);
    assert.equal((await anon.read('/shared.txt', { offset: 4, length: 8 }, alice)).toString(), 'everyone');
    await assert.rejects(anon.read('/shared.txt', { offset: 0, length: 3 }), code('DAVGATE_UNAUTHORIZED'));
    await assert.rejects(all(anon.list('/')), code('DAVGATE_UNAUTHORIZED'));
  });

  it('the private location is alice\'s alone', async () => {
    await anon.write('/private/secret.txt', body('s3cr3t'), { size: 6 }, alice);
    assert.deepEqual(names(await all(anon.list('/private', alice))), ['secret.txt']);
    await assert.rejects(anon.stat('/private/secret.txt', bob), code('DAVGATE_FORBIDDEN_PATH'));
    await assert.rejects(anon.read('/private/secret.txt', { offset: 0, length: 6 }, bob), code('DAVGATE_FORBIDDEN_PATH'));
    await assert.rejects(all(anon.list('/private', bob)), code('DAVGATE_FORBIDDEN_PATH'));
    await assert.rejects(anon.stat('/private', bob), code('DAVGATE_FORBIDDEN_PATH'));
    await assert.rejects(anon.write('/private/bob.txt', body('b'), { size: 1 }, bob), (e) => e instanceof DavgateError);
    await assert.rejects(anon.remove('/private/secret.txt', bob), (e) => e instanceof DavgateError);
    assert.equal((await anon.read('/private/secret.txt', { offset: 0, length: 6 }, alice)).toString(), 's3cr3t');
  });

  it('ctx.authorization overrides configured credentials; the password is never shown', async () => {
    const asBob = new WebDavUpstream({ url: srv.url, username: 'bob', password: 'bob-secret' });
    const urlCreds = new WebDavUpstream({ url: srv.url.replace('http://', 'http://alice:alice-secret@') });
    try {
      assert.equal((await asBob.stat('/')).kind, 'dir');
      await assert.rejects(asBob.stat('/private/secret.txt'), code('DAVGATE_FORBIDDEN_PATH'));
      assert.equal((await asBob.stat('/private/secret.txt', alice)).size, 6);
      assert.equal((await urlCreds.stat('/private/secret.txt')).size, 6);
      for (const u of [asBob, urlCreds]) {
        assert.ok(!u.id.includes('secret') && !u.id.includes('alice@'), u.id);
        assert.equal(u.id, 'webdav:' + srv.url);
        const shown = JSON.stringify(u) + (await import('node:util')).inspect(u);
        assert.ok(!shown.includes('secret') && !shown.includes(Buffer.from('bob:bob-secret').toString('base64')), shown);
      }
      const wrong = new WebDavUpstream({ url: srv.url, username: 'bob', password: 'not-it' });
      try {
        const err = await wrong.stat('/').then(() => null, (e: unknown) => e);
        assert.ok(err instanceof DavgateError && err.code === 'DAVGATE_UNAUTHORIZED');
        assert.ok(!String(err.message).includes('not-it') && !String(err.stack).includes('not-it'));
      } finally {
        await wrong.close();
      }
    } finally {
      await asBob.close();
      await urlCreds.close();
    }
  });
});

// ------------------------------------------------------------------------------------------------
// A fake server for what real ones do not do on demand: odd hrefs, odd statuses, silence.

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

async function fakeServer(handler: Handler): Promise<{ url: string; server: Server; requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }> }> {
  const requests: Array<{ method: string; url: string; headers: IncomingMessage['headers'] }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      handler(req, res, Buffer.concat(chunks).toString());
    });
    req.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/base%20dir/`, server, requests };
}

const ms = (inner: string) => `<?xml version="1.0"?><d:multistatus xmlns:d="DAV:" xmlns:x="urn:other">${inner}</d:multistatus>`;
const resp = (href: string, props: string, status = '200 OK') =>
  `<d:response><d:href>${href}</d:href><d:propstat><d:prop>${props}</d:prop><d:status>HTTP/1.1 ${status}</d:status></d:propstat>` +
  `<d:propstat><d:prop><d:getetag/><d:creationdate/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>`;

describe('WebDavUpstream protocol corner cases (fake server)', () => {
  it('parses absolute and oddly-encoded hrefs, skips the collection and foreign members', async () => {
    const fake = await fakeServer((req, res) => {
      res.writeHead(207, { 'content-type': 'application/xml' });
      const origin = `http://${req.headers.host}`;
      res.end(ms(
        resp(`${origin}/base%20dir/folder`, '<d:resourcetype><d:collection/></d:resourcetype>') +
        resp('/base%20dir/folder/a%c3%bc%2fb.txt', '<d:resourcetype/><d:getcontentlength>5</d:getcontentlength>') + // %2f: not a direct child name
        resp(`${origin}/base%20dir/folder/caf%C3%A9%20%26%20co.txt`, '<d:resourcetype/><d:getcontentlength>7</d:getcontentlength><d:getlastmodified>Tue, 01 Jul 2025 10:00:00 GMT</d:getlastmodified><x:getetag>"not-dav"</x:getetag>') +
        resp('/base%20dir/folder/sub/', '<d:resourcetype><d:collection/><x:other/></d:resourcetype><d:getetag>W/"dir-1"</d:getetag>') +
        resp('/base%20dir/folder/sub/deeper', '<d:resourcetype/>') + // not a direct child
        resp('/elsewhere/x', '<d:resourcetype/>') + // outside the base
        '<d:response><d:href>/base%20dir/folder/forbidden</d:href><d:status>HTTP/1.1 403 Forbidden</d:status></d:response>' +
        resp('/base%20dir/folder/gone', '<d:resourcetype/>', '404 Not Found'),
      ));
    });
    const up = new WebDavUpstream({ url: fake.url });
    try {
      const es = await all(up.list('/folder'));
      assert.deepEqual(es.map((e) => e.name), ['café & co.txt', 'sub']);
      const [file, dir] = es;
      assert.equal(file?.size, 7);
      assert.equal(file?.path, '/folder/café & co.txt');
      assert.equal(file?.mtimeMs, Date.parse('Tue, 01 Jul 2025 10:00:00 GMT'));
      assert.equal(file?.validator, `lastmodified:${file?.mtimeMs}:7`);
      assert.equal(dir?.kind, 'dir');
      assert.equal(dir?.validator, '"dir-1":0:0');
      const req = fake.requests[0];
      assert.equal(req?.method, 'PROPFIND');
      assert.equal(req?.url, '/base%20dir/folder');
      assert.equal(req?.headers.depth, '1');
      assert.equal(req?.headers.authorization, undefined);
    } finally {
      await up.close();
      fake.server.close();
    }
  });

  it('yields entries while the multistatus is still arriving (100,000 entries, streamed)', async () => {
    let release: () => void = () => {};
    const released = new Promise<void>((r) => { release = r; });
    const fake = await fakeServer((_req, res) => {
      res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8' });
      res.write('<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">' + resp('/base%20dir/', '<d:resourcetype><d:collection/></d:resourcetype>'));
      res.write(resp('/base%20dir/first', '<d:resourcetype/><d:getcontentlength>1</d:getcontentlength>'));
      // The rest only once the consumer has seen the first entry: a buffering parser would hang here.
      void released.then(async () => {
        for (let i = 0; i < 100_000; i += 1000) {
          let chunk = '';
          for (let j = i; j < i + 1000; j++) chunk += resp(`/base%20dir/f${j}`, `<d:resourcetype/><d:getcontentlength>${j}</d:getcontentlength>`);
          if (!res.write(chunk)) await once(res, 'drain');
        }
        res.end('</d:multistatus>');
      });
    });
    const up = new WebDavUpstream({ url: fake.url });
    try {
      let n = 0;
      let sizes = 0;
      const timer = setTimeout(() => release(), 5000); // never hang the suite
      for await (const e of up.list('/')) {
        if (n === 0) {
          assert.equal(e.name, 'first');
          clearTimeout(timer);
          release();
        } else {
          sizes += e.size;
        }
        n++;
      }
      assert.equal(n, 100_001);
      assert.equal(sizes, (99_999 * 100_000) / 2);
    } finally {
      await up.close();
      fake.server.close();
    }
  });

  it('a GET answering 200 to a range request is sliced; a changed ETag is refused', async () => {
    let etag = '"v1"';
    const fake = await fakeServer((req, res) => {
      if (req.method === 'PROPFIND') {
        res.writeHead(207, { 'content-type': 'application/xml' });
        res.end(ms(resp(req.url ?? '', `<d:resourcetype/><d:getcontentlength>10</d:getcontentlength><d:getetag>${etag}</d:getetag><d:getlastmodified>Tue, 01 Jul 2025 10:00:00 GMT</d:getlastmodified>`)));
        return;
      }
      const im = req.headers['if-match'];
      if (im !== undefined && (etag.startsWith('W/') || im !== etag)) {
        res.writeHead(412);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-length': '10', etag, 'last-modified': 'Tue, 01 Jul 2025 10:00:00 GMT' });
      res.end('0123456789');
    });
    const up = new WebDavUpstream({ url: fake.url, username: 'svc', password: 'pw' });
    try {
      const v = `"v1":${Date.parse('Tue, 01 Jul 2025 10:00:00 GMT')}:10`;
      assert.equal((await up.read('/f', { offset: 3, length: 4, expectValidator: v })).toString(), '3456');
      assert.equal((await up.read('/f', { offset: 8, length: 100, expectValidator: v })).toString(), '89');
      const req = fake.requests[0];
      assert.equal(req?.headers.range, 'bytes=3-6');
      assert.equal(req?.headers['if-match'], '"v1"');
      assert.equal(req?.headers.authorization, 'Basic ' + Buffer.from('svc:pw').toString('base64'));
      await up.read('/f', { offset: 0, length: 1 }, { authorization: 'Bearer token-of-client' });
      assert.equal(fake.requests.at(-1)?.headers.authorization, 'Bearer token-of-client');
      etag = 'W/"v1"'; // the same tag, weak (Apache, file modified within the last second): still that version
      const before = fake.requests.length;
      assert.equal((await up.read('/f', { offset: 0, length: 2, expectValidator: v })).toString(), '01');
      // Like Apache, the fake refuses If-Match against a weak tag: a conditional GET, a PROPFIND
      // showing the version is still current, then a plain GET checked against the validator.
      assert.deepEqual(fake.requests.slice(before).map((r) => `${r.method} ${r.headers['if-match'] ?? '-'}`), ['GET "v1"', 'PROPFIND -', 'GET -']);
      etag = '"v2"';
      await assert.rejects(up.read('/f', { offset: 0, length: 2, expectValidator: v }), code('DAVGATE_PRECONDITION_FAILED'));
      await assert.rejects(up.read('/f', { offset: 0, length: 2, expectValidator: `lastmodified:${Date.parse('Tue, 01 Jul 2025 10:00:00 GMT')}:11` }), code('DAVGATE_PRECONDITION_FAILED'));
      assert.equal(fake.requests.at(-1)?.headers['if-unmodified-since'], 'Tue, 01 Jul 2025 10:00:00 GMT');
    } finally {
      await up.close();
      fake.server.close();
    }
  });

  it('maps statuses to davgate errors', async () => {
    let status = 500;
    const fake = await fakeServer((_req, res) => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end('nope');
    });
    const up = new WebDavUpstream({ url: fake.url });
    try {
      const cases: Array<[number, string]> = [
        [401, 'DAVGATE_UNAUTHORIZED'], [403, 'DAVGATE_FORBIDDEN_PATH'], [423, 'DAVGATE_LOCKED'],
        [507, 'DAVGATE_INSUFFICIENT_STORAGE'], [500, 'DAVGATE_UPSTREAM_UNAVAILABLE'], [502, 'DAVGATE_UPSTREAM_UNAVAILABLE'],
        [503, 'DAVGATE_UPSTREAM_UNAVAILABLE'], [404, 'DAVGATE_NOT_FOUND'],
      ];
      for (const [s, c] of cases) {
        status = s;
        await assert.rejects(up.stat('/x'), code(c), `status ${s}`);
      }
      status = 412;
      await assert.rejects(up.read('/x', { offset: 0, length: 1, expectValidator: 'lastmodified:0:1' }), code('DAVGATE_PRECONDITION_FAILED'));
      status = 416;
      assert.equal((await up.read('/x', { offset: 99, length: 1 })).length, 0);
    } finally {
      await up.close();
      fake.server.close();
    }
  });

  it('PUT and MKCOL statuses from the server: 507, 423, 409', async () => {
    let putStatus = 507;
    const fake = await fakeServer((req, res) => {
      if (req.method === 'PROPFIND') {
        const isDir = req.url === '/base%20dir/' || req.url === '/base%20dir/d';
        if (req.url === '/base%20dir/d/new') { res.writeHead(404); res.end(); return; }
        res.writeHead(207, { 'content-type': 'application/xml' });
        res.end(ms(resp(req.url ?? '', isDir ? '<d:resourcetype><d:collection/></d:resourcetype>' : '<d:resourcetype/>')));
        return;
      }
      res.writeHead(putStatus);
      res.end();
    });
    const up = new WebDavUpstream({ url: fake.url });
    try {
      await assert.rejects(up.write('/d/new', body('x'), { size: 1 }), code('DAVGATE_INSUFFICIENT_STORAGE'));
      putStatus = 423;
      await assert.rejects(up.write('/d/new', body('x'), { size: 1 }), code('DAVGATE_LOCKED'));
      putStatus = 409;
      await assert.rejects(up.write('/d/new', body('x'), { size: 1 }), code('DAVGATE_CONFLICT'));
      await assert.rejects(up.mkdir('/d/new'), code('DAVGATE_CONFLICT'));
      assert.equal(fake.requests.find((r) => r.method === 'MKCOL')?.url, '/base%20dir/d/new/');
    } finally {
      await up.close();
      fake.server.close();
    }
  });

  it('a silent server times out; a closed port is unavailable', async () => {
    const sockets: import('node:net').Socket[] = [];
    const silent = createTcpServer((sock) => { sockets.push(sock); sock.on('error', () => undefined); });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const port = (silent.address() as AddressInfo).port;
    const up = new WebDavUpstream({ url: `http://127.0.0.1:${port}/`, timeoutMs: 300 });
    try {
      const t0 = Date.now();
      await assert.rejects(up.stat('/x'), code('DAVGATE_UPSTREAM_TIMEOUT'));
      assert.ok(Date.now() - t0 < 5000);
    } finally {
      await up.close().catch(() => undefined);
      for (const s of sockets) s.destroy();
      silent.close();
    }
    const closed = new WebDavUpstream({ url: `http://127.0.0.1:${port}/` });
    try {
      await assert.rejects(closed.stat('/x'), code('DAVGATE_UPSTREAM_UNAVAILABLE'));
    } finally {
      await closed.close();
    }
  });

  it('malformed XML is an upstream failure, not a crash', async () => {
    const fake = await fakeServer((_req, res) => {
      res.writeHead(207, { 'content-type': 'application/xml' });
      res.end('<d:multistatus xmlns:d="DAV:"><d:response><d:href>/base%20dir/x</d:hr');
    });
    const up = new WebDavUpstream({ url: fake.url });
    try {
      await assert.rejects(all(up.list('/')), code('DAVGATE_UPSTREAM_UNAVAILABLE'));
      await assert.rejects(up.stat('/x'), (e) => e instanceof DavgateError);
    } finally {
      await up.close();
      fake.server.close();
    }
  });
});
