import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { access, mkdtemp, mkdir, readFile, readdir, realpath, rm, symlink, writeFile, link, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { FsUpstream } from '../../src/upstream/fs.js';
import type { Entry } from '../../src/upstream/types.js';
import {
  BadRequestError, ConfigError, ConflictError, ExistsError, ForbiddenPathError, IncompleteBodyError,
  IsADirectoryError, NotADirectoryError, NotFoundError, PreconditionFailedError,
} from '../../src/errors.js';

type Ctx = { after(fn: () => Promise<unknown>): void };

async function tempDir(t: Ctx, tag = 'root', base = tmpdir()): Promise<string> {
  const dir = await realpath(await mkdtemp(join(base, `davgate-fs-${tag}-`)));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function setup(t: Ctx, base?: string): Promise<{ root: string; up: FsUpstream }> {
  const root = await tempDir(t, 'root', base);
  return { root, up: await FsUpstream.open(root) };
}

async function collect(it: AsyncIterable<Entry>): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

const names = async (up: FsUpstream, path: string): Promise<string[]> => (await collect(up.list(path))).map((e) => e.name).sort();
const body = (...chunks: string[]): Readable => Readable.from(chunks.map((c) => Buffer.from(c)));
const text = async (up: FsUpstream, path: string): Promise<string> => (await up.read(path, { offset: 0, length: 1 << 20 })).toString();

/** A body we push by hand, to hold a write open. */
function manualBody(): Readable {
  return new Readable({ read() { /* pushed by the test */ } });
}

const UPLOADS = '.davgate-tmp-uploads';

/** The DAV path of the temporary file of a write in progress (under the root's upload directory). */
async function waitForTemp(dir: string): Promise<string> {
  for (let i = 0; i < 500; i++) {
    const tmp = (await readdir(join(dir, UPLOADS)).catch(() => [] as string[]))[0];
    if (tmp) return `${UPLOADS}/${tmp}`;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('temp file never appeared');
}

/** The entries of `dir`, with the upload directory checked empty (no temporary file left) and left out. */
async function visible(dir: string): Promise<string[]> {
  const all = await readdir(dir);
  if (all.includes(UPLOADS)) assert.deepEqual(await readdir(join(dir, UPLOADS)), [], 'a temporary upload file was left');
  return all.filter((n) => n !== UPLOADS);
}

test('open: id is the real root; bad roots are config errors', async (t) => {
  const { root, up } = await setup(t);
  assert.equal(up.id, 'fs:' + root);
  assert.equal(typeof up.quota, 'function');
  assert.equal(typeof up.setMtime, 'function');
  await assert.rejects(FsUpstream.open(join(root, 'missing')), ConfigError);
  await writeFile(join(root, 'f'), 'x');
  await assert.rejects(FsUpstream.open(join(root, 'f')), ConfigError);
  assert.throws(() => new FsUpstream(join(root, 'f')), ConfigError);
});

test('confinement: traversal, NUL, non-canonical and reserved names are refused', async (t) => {
  const { up } = await setup(t);
  for (const p of ['/..', '/../etc/passwd', '/a/../../etc', '/a\0b', '/a//b', '/a/', 'etc', '/./a', '/.davgate-tmp-00']) {
    await assert.rejects(up.stat(p), ForbiddenPathError, p);
    await assert.rejects(up.read(p, { offset: 0, length: 10 }), ForbiddenPathError, p);
    await assert.rejects(up.write(p, body('x')), ForbiddenPathError, p);
    await assert.rejects(up.mkdir(p), ForbiddenPathError, p);
    await assert.rejects(collect(up.list(p)), ForbiddenPathError, p);
  }
});

test('confinement: symlinks leaving the root are refused and invisible', async (t) => {
  const { root, up } = await setup(t);
  const outside = await tempDir(t, 'outside');
  await writeFile(join(outside, 'secret'), 'secret');
  await symlink('/etc', join(root, 'etc'));
  await symlink(outside, join(root, 'out'));
  await symlink(join(outside, 'secret'), join(root, 'secret'));
  await writeFile(join(root, 'ok.txt'), 'ok');

  await assert.rejects(up.stat('/etc'), ForbiddenPathError);
  await assert.rejects(up.stat('/etc/passwd'), ForbiddenPathError);
  await assert.rejects(up.read('/etc/passwd', { offset: 0, length: 100 }), ForbiddenPathError);
  await assert.rejects(up.read('/secret', { offset: 0, length: 100 }), ForbiddenPathError);
  await assert.rejects(collect(up.list('/etc')), ForbiddenPathError);
  await assert.rejects(collect(up.list('/out')), ForbiddenPathError);
  assert.deepEqual(await names(up, '/'), ['ok.txt']);

  // write-through and every other mutation stay out of the outside directory
  await assert.rejects(up.write('/out/new', body('x')), ForbiddenPathError);
  await assert.rejects(up.write('/out/a/b', body('x')), ForbiddenPathError);
  await assert.rejects(up.write('/secret', body('pwned')), ForbiddenPathError);
  await assert.rejects(up.write('/etc/davgate-test', body('x')), ForbiddenPathError);
  await assert.rejects(up.mkdir('/out/d'), ForbiddenPathError);
  await assert.rejects(up.remove('/out/secret'), ForbiddenPathError);
  await assert.rejects(up.move('/ok.txt', '/out/ok.txt', { overwrite: true }), ForbiddenPathError);
  await assert.rejects(up.copy('/ok.txt', '/out/ok.txt', { overwrite: true }), ForbiddenPathError);
  await assert.rejects(up.copy('/out/secret', '/stolen', { overwrite: true }), ForbiddenPathError);
  await assert.rejects(up.setMtime('/secret', 0), ForbiddenPathError);
  assert.deepEqual(await readdir(outside), ['secret']);
  assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'secret');
});

test('confinement: symlinks inside the root are followed', async (t) => {
  const { root, up } = await setup(t);
  await mkdir(join(root, 'real'));
  await writeFile(join(root, 'real', 'f.txt'), 'hello');
  await symlink(join(root, 'real'), join(root, 'alias'));
  await symlink('real/f.txt', join(root, 'flink'));
  await symlink(join(root, 'nowhere'), join(root, 'dangling'));

  assert.equal((await up.stat('/alias')).kind, 'dir');
  assert.equal(await text(up, '/alias/f.txt'), 'hello');
  assert.equal(await text(up, '/flink'), 'hello');
  assert.deepEqual(await names(up, '/'), ['alias', 'flink', 'real']);
  assert.deepEqual(await names(up, '/alias'), ['f.txt']);
  await up.write('/alias/g.txt', body('via link'));
  assert.equal(await readFile(join(root, 'real', 'g.txt'), 'utf8'), 'via link');
  await assert.rejects(up.stat('/dangling'), NotFoundError);
});

test('stat: root, files, directories, missing paths', async (t) => {
  const { root, up } = await setup(t);
  const r = await up.stat('/');
  assert.equal(r.name, '');
  assert.equal(r.path, '/');
  assert.equal(r.kind, 'dir');
  assert.equal(r.size, 0);
  await writeFile(join(root, 'a b.txt'), '12345');
  const f = await up.stat('/a b.txt');
  assert.equal(f.name, 'a b.txt');
  assert.equal(f.kind, 'file');
  assert.equal(f.size, 5);
  assert.ok(f.mtimeMs > 0 && f.birthtimeMs > 0);
  assert.match(f.validator, /^[0-9a-f]+-5-[0-9a-f]+$/);
  await assert.rejects(up.stat('/missing'), NotFoundError);
  await assert.rejects(up.stat('/a b.txt/x'), NotFoundError);
});

test('validator: stable while unchanged, changes with content', async (t) => {
  const { root, up } = await setup(t);
  const v1 = (await up.write('/f', body('aaa'))).validator;
  assert.equal((await up.stat('/f')).validator, v1);
  const v2 = (await up.write('/f', body('bbb'))).validator;
  assert.notEqual(v2, v1);
  // in place, same size, same inode: only the mtime tells
  await writeFile(join(root, 'f'), 'ccc');
  await utimes(join(root, 'f'), new Date(), new Date(Date.now() + 5000));
  const v3 = (await up.stat('/f')).validator;
  assert.notEqual(v3, v2);
  await assert.rejects(up.read('/f', { offset: 0, length: 3, expectValidator: v2 }), PreconditionFailedError);
  assert.equal((await up.read('/f', { offset: 0, length: 3, expectValidator: v3 })).toString(), 'ccc');
});

test('read: ranges, end of file, errors', async (t) => {
  const { root, up } = await setup(t);
  const data = Buffer.alloc(10000);
  for (let i = 0; i < data.length; i++) data[i] = i % 251;
  await writeFile(join(root, 'f'), data);
  assert.deepEqual(await up.read('/f', { offset: 0, length: 10 }), data.subarray(0, 10));
  assert.deepEqual(await up.read('/f', { offset: 4000, length: 3000 }), data.subarray(4000, 7000));
  assert.deepEqual(await up.read('/f', { offset: 9995, length: 10 }), data.subarray(9995));
  assert.equal((await up.read('/f', { offset: 10000, length: 10 })).length, 0);
  assert.equal((await up.read('/f', { offset: 50000, length: 10 })).length, 0);
  assert.equal((await up.read('/f', { offset: 10, length: 0 })).length, 0);
  assert.deepEqual(await up.read('/f', { offset: 0, length: 1 << 20 }), data);
  await assert.rejects(up.read('/f', { offset: -1, length: 10 }), BadRequestError);
  await assert.rejects(up.read('/f', { offset: 0, length: 1.5 }), BadRequestError);
  await assert.rejects(up.read('/', { offset: 0, length: 10 }), IsADirectoryError);
  await assert.rejects(up.read('/missing', { offset: 0, length: 10 }), NotFoundError);
  await assert.rejects(up.read('/f/x', { offset: 0, length: 10 }), NotFoundError);
});

test('special files are neither listed nor readable (and a fifo does not hang read)', async (t) => {
  const { root, up } = await setup(t);
  try {
    execFileSync('mkfifo', [join(root, 'fifo')]);
  } catch {
    t.skip('mkfifo not available');
    return;
  }
  await writeFile(join(root, 'f'), 'x');
  assert.deepEqual(await names(up, '/'), ['f']);
  await assert.rejects(up.stat('/fifo'), NotFoundError);
  await assert.rejects(up.read('/fifo', { offset: 0, length: 10 }), NotFoundError);
});

test('write: creates, replaces, keeps mode, checks parent and target', async (t) => {
  const { root, up } = await setup(t);
  const e = await up.write('/new.txt', body('hello ', 'world'), { size: 11 });
  assert.equal(e.kind, 'file');
  assert.equal(e.size, 11);
  assert.equal(e.path, '/new.txt');
  assert.equal(await readFile(join(root, 'new.txt'), 'utf8'), 'hello world');
  await fs.promises.chmod(join(root, 'new.txt'), 0o600);
  await up.write('/new.txt', body('replaced'));
  assert.equal(await text(up, '/new.txt'), 'replaced');
  assert.equal((await fs.promises.stat(join(root, 'new.txt'))).mode & 0o777, 0o600);
  await up.write('/empty', body(), { size: 0 });
  assert.equal((await up.stat('/empty')).size, 0);

  await mkdir(join(root, 'd'));
  await assert.rejects(up.write('/d', body('x')), IsADirectoryError);
  await assert.rejects(up.write('/', body('x')), IsADirectoryError);
  await assert.rejects(up.write('/nope/x', body('x')), ConflictError);
  await assert.rejects(up.write('/new.txt/x', body('x')), ConflictError);
  assert.deepEqual((await visible(root)).sort(), ['d', 'empty', 'new.txt']);
});

test('write: the temp file of a slow write is never listed, the old version stays readable', async (t) => {
  const { root, up } = await setup(t);
  await up.write('/slow.bin', body('old'));
  const b = manualBody();
  b.push(Buffer.alloc(1000, 'a'));
  const done = up.write('/slow.bin', b, { size: 2000 });
  const tmp = await waitForTemp(root);
  assert.deepEqual(await names(up, '/'), ['slow.bin']);
  assert.equal(await text(up, '/slow.bin'), 'old');
  await assert.rejects(up.stat('/' + tmp), ForbiddenPathError);
  b.push(Buffer.alloc(1000, 'b'));
  b.push(null);
  const e = await done;
  assert.equal(e.size, 2000);
  assert.deepEqual(await visible(root), ['slow.bin']);
  const got = await up.read('/slow.bin', { offset: 0, length: 4000 });
  assert.equal(got.length, 2000);
  assert.equal(got[999], 'a'.charCodeAt(0));
  assert.equal(got[1000], 'b'.charCodeAt(0));
});

test('write: an aborted body commits nothing and leaves no temp file', async (t) => {
  const { root, up } = await setup(t);
  const b = manualBody();
  b.push(Buffer.alloc(5000, 'a'));
  const done = up.write('/aborted', b, { size: 10000 });
  await waitForTemp(root);
  b.destroy(new Error('client aborted'));
  await assert.rejects(done, /client aborted/);
  assert.deepEqual(await visible(root), []);

  // destroyed without an error: still incomplete, still nothing left
  await up.write('/kept', body('old'));
  const b2 = manualBody();
  b2.push(Buffer.from('new new new'));
  const done2 = up.write('/kept', b2);
  await waitForTemp(root);
  b2.destroy();
  await assert.rejects(done2, IncompleteBodyError);
  assert.deepEqual(await visible(root), ['kept']);
  assert.equal(await text(up, '/kept'), 'old');
});

test('write: an HTTP client that disconnects mid-body commits nothing', async (t) => {
  const { root, up } = await setup(t);
  let result: Promise<unknown> | undefined;
  const server = http.createServer((req, res) => {
    result = up.write('/upload', req, { size: Number(req.headers['content-length']) });
    result.then(() => res.end('ok'), () => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  const { port } = server.address() as AddressInfo;
  const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: '/', headers: { 'content-length': 100000 } });
  req.on('error', () => undefined);
  req.write(Buffer.alloc(4096, 'x'));
  await waitForTemp(root);
  req.destroy();
  await assert.rejects(() => result ?? Promise.reject(new Error('no request seen')));
  assert.deepEqual(await visible(root), []);
});

test('write: a body shorter or longer than size commits nothing', async (t) => {
  const { root, up } = await setup(t);
  await assert.rejects(up.write('/short', body('12345'), { size: 10 }), IncompleteBodyError);
  await assert.rejects(up.write('/long', body('12345', '67890'), { size: 7 }), IncompleteBodyError);
  assert.deepEqual(await visible(root), []);
  await up.write('/f', body('old'));
  await assert.rejects(up.write('/f', body('ne'), { size: 3 }), IncompleteBodyError);
  assert.equal(await text(up, '/f'), 'old');
  assert.deepEqual(await visible(root), ['f']);
});

test('list: kinds, sizes, temp files hidden, errors', async (t) => {
  const { root, up } = await setup(t);
  await mkdir(join(root, 'sub'));
  await writeFile(join(root, 'a'), 'abc');
  await writeFile(join(root, '.davgate-tmp-deadbeef'), 'partial');
  const list = up.list('/');
  assert.equal(typeof list[Symbol.asyncIterator], 'function');
  const entries = (await collect(list)).sort((x, y) => x.name.localeCompare(y.name));
  assert.deepEqual(entries.map((e) => [e.name, e.path, e.kind, e.size]), [['a', '/a', 'file', 3], ['sub', '/sub', 'dir', 0]]);
  assert.deepEqual(await names(up, '/sub'), []);
  await assert.rejects(collect(up.list('/missing')), NotFoundError);
  await assert.rejects(collect(up.list('/a')), NotADirectoryError);
});

test('list: a 20k-entry directory streams (first entry before the directory is read)', async (t) => {
  // Creating 20k files on a disk-backed /tmp can take seconds per run (~0.4 ms each here);
  // tmpfs, where present, keeps the test fast and streaming does not depend on the fs type.
  const shm = await access('/dev/shm', fs.constants.W_OK).then(() => '/dev/shm', () => undefined);
  const { root, up } = await setup(t, shm);
  const N = 20000;
  await mkdir(join(root, 'big'));
  for (let i = 0; i < N; i++) fs.closeSync(fs.openSync(join(root, 'big', `f${i}`), 'w'));
  const lstat = t.mock.method(fs, 'lstat');

  // Early stop: the first entry needs only a small part of the directory's lstats.
  for await (const e of up.list('/big')) {
    assert.match(e.name, /^f\d+$/);
    break;
  }
  const afterFirst = lstat.mock.callCount();
  assert.ok(afterFirst > 0 && afterFirst <= 1000, `lstat calls before the first entry: ${afterFirst}`);

  const t0 = performance.now();
  let firstMs = -1;
  let n = 0;
  const seen = new Set<string>();
  for await (const e of up.list('/big')) {
    if (n === 0) firstMs = performance.now() - t0;
    n++;
    seen.add(e.name);
  }
  const totalMs = performance.now() - t0;
  assert.equal(n, N);
  assert.equal(seen.size, N);
  assert.ok(firstMs < totalMs / 2, `first entry after ${firstMs.toFixed(1)} ms of ${totalMs.toFixed(1)} ms`);
});

test('mkdir: creates one level; exists and missing-parent errors', async (t) => {
  const { root, up } = await setup(t);
  await up.mkdir('/d');
  assert.equal((await up.stat('/d')).kind, 'dir');
  await assert.rejects(up.mkdir('/d'), ExistsError);
  await assert.rejects(up.mkdir('/'), ExistsError);
  await writeFile(join(root, 'f'), 'x');
  await assert.rejects(up.mkdir('/f'), ExistsError);
  await assert.rejects(up.mkdir('/nope/x'), ConflictError);
  await assert.rejects(up.mkdir('/f/x'), ConflictError);
});

test('remove: files and trees; missing and root', async (t) => {
  const { root, up } = await setup(t);
  await mkdir(join(root, 'd', 'e'), { recursive: true });
  await writeFile(join(root, 'd', 'e', 'f'), 'x');
  await writeFile(join(root, 'g'), 'x');
  await up.remove('/g');
  await up.remove('/d');
  assert.deepEqual(await visible(root), []);
  await assert.rejects(up.remove('/g'), NotFoundError);
  await assert.rejects(up.remove('/'), ForbiddenPathError);
});

test('move: rename, overwrite rules, parents, subtree', async (t) => {
  const { root, up } = await setup(t);
  await writeFile(join(root, 'a'), 'A');
  await writeFile(join(root, 'b'), 'B');
  await mkdir(join(root, 'd', 'sub'), { recursive: true });
  await writeFile(join(root, 'd', 'sub', 'x'), 'X');
  await mkdir(join(root, 'e'));
  await writeFile(join(root, 'e', 'only-in-e'), 'E');

  await assert.rejects(up.move('/a', '/b', { overwrite: false }), ExistsError);
  assert.equal(await text(up, '/a'), 'A');
  await up.move('/a', '/b', { overwrite: true });
  assert.equal(await text(up, '/b'), 'A');
  await assert.rejects(up.stat('/a'), NotFoundError);

  await up.move('/b', '/c', { overwrite: false });
  assert.deepEqual(await names(up, '/'), ['c', 'd', 'e']);

  await up.move('/d', '/e', { overwrite: true }); // directory over directory: e's old content is gone
  assert.deepEqual(await names(up, '/e'), ['sub']);
  assert.equal(await text(up, '/e/sub/x'), 'X');

  await up.move('/c', '/e', { overwrite: true }); // file over directory
  assert.equal((await up.stat('/e')).kind, 'file');
  await up.mkdir('/f');
  await up.move('/f', '/e', { overwrite: true }); // directory over file
  assert.equal((await up.stat('/e')).kind, 'dir');

  await assert.rejects(up.move('/missing', '/z', { overwrite: true }), NotFoundError);
  await assert.rejects(up.move('/e', '/nope/e', { overwrite: true }), ConflictError);
  await assert.rejects(up.move('/e', '/e/inner', { overwrite: true }), ConflictError);
  await assert.rejects(up.move('/e', '/e', { overwrite: true }), ForbiddenPathError);
  await assert.rejects(up.move('/', '/x', { overwrite: true }), ForbiddenPathError);
  await assert.rejects(up.move('/e', '/', { overwrite: true }), ForbiddenPathError);
});

test('move: between hard links of one file removes the source', async (t) => {
  const { root, up } = await setup(t);
  await writeFile(join(root, 'h1'), 'H');
  await link(join(root, 'h1'), join(root, 'h2'));
  await assert.rejects(up.move('/h1', '/h2', { overwrite: false }), ExistsError);
  await up.move('/h1', '/h2', { overwrite: true });
  assert.deepEqual(await visible(root), ['h2']);
});

test('copy: files and trees, shallow, overwrite rules, parents, subtree', async (t) => {
  const { root, up } = await setup(t);
  await writeFile(join(root, 'a'), 'A');
  await mkdir(join(root, 'd', 'sub'), { recursive: true });
  await writeFile(join(root, 'd', 'sub', 'x'), 'X');
  await writeFile(join(root, 'd', 'y'), 'Y');
  await writeFile(join(root, 'd', '.davgate-tmp-0123'), 'partial');

  await up.copy('/a', '/b', { overwrite: false });
  assert.equal(await text(up, '/b'), 'A');
  assert.equal(await text(up, '/a'), 'A');
  assert.notEqual((await up.stat('/a')).validator, (await up.stat('/b')).validator);
  await assert.rejects(up.copy('/a', '/b', { overwrite: false }), ExistsError);
  await writeFile(join(root, 'a'), 'A2');
  await up.copy('/a', '/b', { overwrite: true });
  assert.equal(await text(up, '/b'), 'A2');

  await up.copy('/d', '/c', { overwrite: false });
  assert.deepEqual((await readdir(join(root, 'c'))).sort(), ['sub', 'y']);
  assert.equal(await text(up, '/c/sub/x'), 'X');
  assert.equal(await text(up, '/d/y'), 'Y');

  await up.copy('/d', '/s', { overwrite: false, shallow: true });
  assert.deepEqual(await names(up, '/s'), []);

  await writeFile(join(root, 'c', 'stale'), 'old');
  await up.copy('/d', '/c', { overwrite: true }); // replaces, does not merge
  assert.deepEqual(await names(up, '/c'), ['sub', 'y']);
  await up.copy('/a', '/c', { overwrite: true }); // file over directory
  assert.equal((await up.stat('/c')).kind, 'file');

  await assert.rejects(up.copy('/missing', '/z', { overwrite: true }), NotFoundError);
  await assert.rejects(up.copy('/a', '/nope/a', { overwrite: true }), ConflictError);
  await assert.rejects(up.copy('/d', '/d/inner', { overwrite: true }), ConflictError);
  await assert.rejects(up.copy('/a', '/a', { overwrite: true }), ForbiddenPathError);
  await symlink(join(root, 'd'), join(root, 'l'));
  await assert.rejects(up.copy('/d', '/l/inner', { overwrite: true }), ConflictError);
  assert.ok(!(await visible(root)).some((n) => n.startsWith('.davgate-tmp-')));
});

test('setMtime and quota', async (t) => {
  const { root, up } = await setup(t);
  await writeFile(join(root, 'f'), 'x');
  const when = Date.UTC(2020, 0, 2, 3, 4, 5, 678);
  await up.setMtime('/f', when);
  assert.ok(Math.abs((await up.stat('/f')).mtimeMs - when) < 1);
  await assert.rejects(up.setMtime('/missing', when), NotFoundError);
  const q = await up.quota('/');
  assert.ok(Number.isFinite(q.availableBytes) && q.availableBytes > 0);
  assert.ok(Number.isFinite(q.usedBytes) && q.usedBytes >= 0);
});

test('crash debris: temporary upload files idle past the bound are removed at open, younger and live ones kept', async (t) => {
  const root = await tempDir(t, 'root');
  await mkdir(join(root, UPLOADS));
  const old = join(root, UPLOADS, 'crashed-long-ago');
  const young = join(root, UPLOADS, 'another-gateway-writing');
  await writeFile(old, 'partial');
  await writeFile(young, 'partial');
  const past = new Date(Date.now() - 2 * 3600_000);
  await utimes(old, past, past);
  const up = await FsUpstream.open(root, { tempMaxAge: 3600_000 });
  t.after(() => up.close());
  assert.deepEqual(await readdir(join(root, UPLOADS)), ['another-gateway-writing']);
  assert.deepEqual(await names(up, '/'), [], 'the upload directory is listed');
  // A write of this process in progress is never swept, however old its file looks.
  const b = manualBody();
  b.push(Buffer.alloc(100, 'a'));
  const done = up.write('/slow.bin', b, { size: 200 });
  const tmp = await waitForTemp(root);
  await utimes(join(root, tmp), past, past);
  await utimes(young, past, past);
  assert.equal(await up.sweepTemporaries(3600_000), 1);
  b.push(Buffer.alloc(100, 'b'));
  b.push(null);
  assert.equal((await done).size, 200);
  assert.deepEqual(await visible(root), ['slow.bin']);
});

test('option defaults: write without options takes any length; copy without shallow copies the tree', async (t) => {
  const { root, up } = await setup(t);
  assert.equal((await up.write('/free.txt', body('any ', 'length'))).size, 10);
  await mkdir(join(root, 'tree', 'sub'), { recursive: true });
  await writeFile(join(root, 'tree', 'sub', 'leaf'), 'leaf');
  await up.copy('/tree', '/deep', { overwrite: false });
  assert.equal(await text(up, '/deep/sub/leaf'), 'leaf');
  await up.copy('/tree', '/flat', { overwrite: false, shallow: true });
  assert.deepEqual(await names(up, '/flat'), []);
  await assert.rejects(up.copy('/tree', '/flat', { overwrite: false }), ExistsError);
  await assert.rejects(up.move('/free.txt', '/deep', { overwrite: false }), ExistsError);
  await up.move('/free.txt', '/deep', { overwrite: true });
  assert.equal(await text(up, '/deep'), 'any length');
});
