import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, utimes, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeTable } from '../../src/cachemgr/nodetable.js';
import { NodeRecords } from '../../src/cachemgr/nodes.js';
import { SHARED } from '../../src/cachemgr/identity.js';
import { NotFoundError, UpstreamUnavailableError } from '../../src/errors.js';
import { fixture, type Fixture } from '../helpers/cache-fixture.js';

interface Records extends Fixture { nodes: NodeRecords; obsolete: Array<[string, string | undefined]> }

async function records(files: Record<string, string>, ttl = 60_000, fn: (r: Records) => Promise<void>): Promise<void> {
  const f = await fixture(files);
  const table = await NodeTable.open('memory', f.cacheDir);
  const obsolete: Array<[string, string | undefined]> = [];
  const nodes = new NodeRecords(f.upstream, table, { ttl, listingEntries: 100 }, async (key, keep) => { obsolete.push([key, keep]); });
  try {
    await fn({ ...f, nodes, obsolete });
  } finally {
    await table.close();
    await f.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('getnode within the TTL does not ask the upstream again', async () => {
  await records({ 'a.txt': 'hello' }, 60_000, async ({ nodes, upstream }) => {
    const n1 = await nodes.getnode('/a.txt', SHARED);
    const n2 = await nodes.getnode('/a.txt', SHARED);
    assert.equal(n1.size, 5);
    assert.equal(n2, n1);
    assert.equal(upstream.count('stat'), 1);
  });
});

test('concurrent getnodes of one path share one stat', async () => {
  await records({ 'a.txt': 'hello' }, 60_000, async ({ nodes, upstream }) => {
    const all = await Promise.all(Array.from({ length: 5 }, () => nodes.getnode('/a.txt', SHARED)));
    assert.equal(new Set(all).size, 1);
    assert.equal(upstream.count('stat'), 1);
  });
});

test('after the TTL an unchanged object keeps its version and its blocks', async () => {
  await records({ 'a.txt': 'hello' }, 20, async ({ nodes, upstream, obsolete }) => {
    const n1 = await nodes.getnode('/a.txt', SHARED);
    await sleep(30);
    const n2 = await nodes.getnode('/a.txt', SHARED);
    assert.equal(upstream.count('stat'), 2, 'revalidated');
    assert.equal(n2.version, n1.version);
    assert.ok(n2.checkedAt >= n1.checkedAt);
    assert.deepEqual(obsolete, []);
  });
});

test('a changed validator bumps the version and makes the old blocks obsolete', async () => {
  await records({ 'a.txt': 'hello' }, 20, async ({ nodes, root, obsolete }) => {
    const n1 = await nodes.getnode('/a.txt', SHARED);
    await writeFile(join(root, 'a.txt'), 'hello, world');
    await utimes(join(root, 'a.txt'), new Date(), new Date(Date.now() + 5000));
    await sleep(30);
    const n2 = await nodes.getnode('/a.txt', SHARED);
    assert.notEqual(n2.version, n1.version);
    assert.notEqual(n2.validator, n1.validator);
    assert.equal(n2.size, 12);
    assert.deepEqual(obsolete, [[n1.key, n2.version]], 'every block but the new version\'s is dropped');
  });
});

test('a missing path is remembered as absent for the TTL, and its blocks dropped', async () => {
  await records({ 'a.txt': 'hello' }, 60_000, async ({ nodes, upstream, root, obsolete }) => {
    const n = await nodes.getnode('/a.txt', SHARED);
    nodes.forgetPath('/a.txt', SHARED);
    await rm(join(root, 'a.txt'));
    await assert.rejects(nodes.getnode('/a.txt', SHARED), NotFoundError);
    await assert.rejects(nodes.getnode('/a.txt', SHARED), NotFoundError);
    assert.equal(upstream.count('stat'), 2, 'the second miss costs no stat');
    assert.deepEqual(obsolete, [[n.key, undefined]]);
    // A write there (forgetMissingUnder) makes the name worth asking again.
    await writeFile(join(root, 'a.txt'), 'back');
    nodes.forgetMissingUnder('/');
    assert.equal((await nodes.getnode('/a.txt', SHARED)).size, 4);
  });
});

test('an unreachable upstream serves what was known, marked stale', async () => {
  await records({ 'a.txt': 'hello' }, 20, async ({ nodes, gate }) => {
    const n1 = await nodes.getnode('/a.txt', SHARED);
    await sleep(30);
    gate.statError = new UpstreamUnavailableError('down');
    const n2 = await nodes.getnode('/a.txt', SHARED);
    assert.equal(n2.stale, true);
    assert.equal(n2.version, n1.version);
    // Never seen before: nothing to serve, the error stands.
    await assert.rejects(nodes.getnode('/other.txt', SHARED), UpstreamUnavailableError);
  });
});

test('a name is found in either Unicode normal form; node.path is the real name', async () => {
  const nfd = 'cafe\u0301.txt';
  await records({ [nfd]: 'x' }, 60_000, async ({ nodes }) => {
    const n = await nodes.getnode('/caf\u00e9.txt', SHARED);
    assert.equal(n.path, '/' + nfd);
  });
});

test('identities never share records', async () => {
  await records({ 'a.txt': 'hello' }, 60_000, async ({ nodes, upstream }) => {
    const a = await nodes.getnode('/a.txt', { key: 'alice' });
    const b = await nodes.getnode('/a.txt', { key: 'bob' });
    assert.notEqual(a.key, b.key);
    assert.equal(upstream.count('stat'), 2);
  });
});

test('a listing remembers its children: a following getnode needs no stat', async () => {
  await records({ 'd/x': '1', 'd/y': '22' }, 60_000, async ({ nodes, upstream }) => {
    const dir = await nodes.getnode('/d', SHARED);
    const children = [];
    for await (const c of nodes.list(dir, SHARED)) children.push(c);
    assert.deepEqual(children.map((c) => c.path).sort(), ['/d/x', '/d/y']);
    upstream.reset();
    assert.equal((await nodes.getnode('/d/y', SHARED)).size, 2);
    assert.equal(upstream.count('stat'), 0);
  });
});

test('install records a written entry; a new version forgets the parent listing', async () => {
  await records({ 'd/x': '1' }, 60_000, async ({ nodes, upstream, root }) => {
    const list = async () => { const out: string[] = []; for await (const c of nodes.list('/d', SHARED)) out.push(c.path); return out.sort(); };
    assert.deepEqual(await list(), ['/d/x']);
    await writeFile(join(root, 'd', 'y'), 'new');
    const entry = await upstream.stat('/d/y');
    const node = await nodes.install(entry, SHARED);
    assert.equal(node.size, 3);
    upstream.reset();
    assert.deepEqual(await list(), ['/d/x', '/d/y']);
    assert.equal(upstream.count('list'), 1, 'listed again');
    assert.equal((await nodes.getnode('/d/y', SHARED)).version, node.version);
    assert.equal(upstream.count('stat'), 0, 'installed, fresh: no stat');
  });
});

test('invalidating a path the store created forgets the absent names and listings above it', async () => {
  await records({ 'a.txt': 'x' }, 60_000, async ({ nodes, root }) => {
    const names = async () => { const out: string[] = []; for await (const n of nodes.list('/', SHARED)) out.push(n.path); return out.sort(); };
    await assert.rejects(nodes.getnode('/new', SHARED), NotFoundError);
    assert.deepEqual(await names(), ['/a.txt']);
    // Created behind the gateway's back, two directory levels at once (an S3 key new/dir/f.txt).
    await mkdir(join(root, 'new', 'dir'), { recursive: true });
    await writeFile(join(root, 'new', 'dir', 'f.txt'), 'y');
    assert.deepEqual(await names(), ['/a.txt'], 'within the TTL the cached listing stands');
    await nodes.invalidate('/new/dir/f.txt');
    assert.equal((await nodes.getnode('/new', SHARED)).kind, 'dir', 'the absent name above is forgotten');
    assert.deepEqual(await names(), ['/a.txt', '/new'], 'so is the listing of the root');
  });
});
