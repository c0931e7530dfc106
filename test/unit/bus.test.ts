import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CacheManager, type BusHandlers, type InvalidationBus } from '../../src/cachemgr/cachemgr.js';
import { NotFoundError } from '../../src/errors.js';
import { defaults, fixture } from '../helpers/cache-fixture.js';

// The cache manager's side of the invalidation bus: what it announces for each change, and
// what it forgets when another gateway announces one.

class FakeBus implements InvalidationBus {
  readonly sent: string[][] = [];
  handlers: BusHandlers | undefined;
  async publish(paths: readonly string[]): Promise<void> { this.sent.push([...paths]); }
  subscribe(handlers: BusHandlers): void { this.handlers = handlers; }
}

async function withBus(files: Record<string, string>, fn: (cache: CacheManager, bus: FakeBus, root: string, count: (op: string) => number) => Promise<void>): Promise<void> {
  const f = await fixture(files);
  const bus = new FakeBus();
  const cache = await CacheManager.open(f.upstream, defaults(f.cacheDir), undefined, undefined, bus);
  try {
    await fn(cache, bus, f.root, (op) => f.upstream.count(op));
  } finally {
    await cache.close();
    await f.close();
  }
}

test('every change is announced with the paths it touched, before it returns', async () => {
  await withBus({ 'a.txt': 'a' }, async (cache, bus) => {
    await cache.write('/b.txt', Readable.from([Buffer.from('b')]), 1);
    await cache.mkdir('/d');
    await cache.copy('/b.txt', '/d/c.txt', true, false);
    await cache.move('/a.txt', '/d/a.txt', true);
    await cache.remove('/b.txt');
    await cache.invalidate('/d');
    assert.deepEqual(bus.sent, [['/b.txt'], ['/d'], ['/d/c.txt'], ['/a.txt', '/d/a.txt'], ['/b.txt'], ['/d']]);
  });
});

test('a change announced elsewhere: the record, the absent name and the parent listing are forgotten', async () => {
  await withBus({ 'dir/f.txt': 'old' }, async (cache, bus, root, count) => {
    await cache.getnode('/dir/f.txt');
    await assert.rejects(cache.getnode('/dir/new.txt'), NotFoundError); // remembered absent
    for await (const n of cache.list('/dir')) void n; // listing cached
    await writeFile(join(root, 'dir', 'f.txt'), 'newer');
    await writeFile(join(root, 'dir', 'new.txt'), 'n');
    const stats = count('stat');
    assert.equal((await cache.getnode('/dir/f.txt')).size, 3, 'fresh within the TTL');
    assert.equal(count('stat'), stats);
    // Resolves once they are forgotten: the bus acknowledges only then.
    await bus.handlers!.changed(['/dir/f.txt', '/dir/new.txt']);
    assert.equal((await cache.getnode('/dir/f.txt')).size, 5, 'revalidated');
    assert.equal((await cache.getnode('/dir/new.txt')).size, 1, 'no longer absent');
    const names: string[] = [];
    for await (const n of cache.list('/dir')) names.push(n.path);
    assert.deepEqual(names.sort(), ['/dir/f.txt', '/dir/new.txt'], 'listed again');
  });
});

test('missed announcements: every record is dropped', async () => {
  await withBus({ 'x.txt': 'x' }, async (cache, bus, root) => {
    await cache.getnode('/x.txt');
    await writeFile(join(root, 'x.txt'), 'xyz');
    bus.handlers!.missed();
    await new Promise((r) => setImmediate(r));
    assert.equal((await cache.getnode('/x.txt')).size, 3);
  });
});
