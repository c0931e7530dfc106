import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type TestGateway } from '../helpers/inproc.js';

// upstream.watch: a directory changed behind the gateway's back (another program writing into
// it) is served new within moments, although the TTL is 10 minutes.

/** Polls until `ok` holds for a request through the gateway; the ms it took. */
async function until(url: string, init: RequestInit, ok: (status: number, text: string) => boolean, limitMs = 2_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const res = await fetch(url, init);
    const text = await res.text();
    if (ok(res.status, text)) return performance.now() - t0;
    assert.ok(performance.now() - t0 < limitMs, `still ${res.status} ${JSON.stringify(text.slice(0, 60))} after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('fs upstream watched for changes', { timeout: 60_000 }, () => {
  let gw: TestGateway;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'davgate-watch-'));
    gw = await startGateway({ upstream: { type: 'fs', root: dir, watch: true }, cache: { ttl: '10m' } }, { upstreamDir: dir });
  });
  after(async () => {
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a file rewritten in the directory is served new; one added deep down is listed; one removed is gone', async () => {
    const file = join(gw.upstreamDir, 'notes.txt');
    await writeFile(file, 'first version');
    assert.equal(await (await fetch(gw.url + 'notes.txt')).text(), 'first version');
    await gw.gateway.cache.flush();
    const reads = gw.upstream.count('read');
    assert.equal(await (await fetch(gw.url + 'notes.txt')).text(), 'first version');
    assert.equal(gw.upstream.count('read'), reads, 'cached');
    await writeFile(file, 'second version!');
    const delay = await until(gw.url + 'notes.txt', {}, (s, t) => s === 200 && t === 'second version!');
    console.log(`fs watcher: rewritten file served new after ${delay.toFixed(0)} ms`);
    // Saved the way editors save (a new file renamed over it), then written in place again.
    await writeFile(file + '.tmp', 'third, renamed into place');
    await rename(file + '.tmp', file);
    await until(gw.url + 'notes.txt', {}, (s, t) => s === 200 && t === 'third, renamed into place');
    await writeFile(file, 'fourth, in place');
    await until(gw.url + 'notes.txt', {}, (s, t) => s === 200 && t === 'fourth, in place');

    assert.equal((await fetch(gw.url + 'deep/', { method: 'PROPFIND', headers: { depth: '1' } })).status, 404);
    await mkdir(join(gw.upstreamDir, 'deep', 'er'), { recursive: true });
    await writeFile(join(gw.upstreamDir, 'deep', 'er', 'new file.txt'), 'new');
    await until(gw.url + 'deep/er/', { method: 'PROPFIND', headers: { depth: '1' } }, (s, t) => s === 207 && t.includes('new%20file.txt'));
    assert.equal(await (await fetch(gw.url + 'deep/er/new%20file.txt')).text(), 'new');
    await writeFile(join(gw.upstreamDir, 'deep', 'er', 'new file.txt'), 'newer');
    await until(gw.url + 'deep/er/new%20file.txt', {}, (s, t) => s === 200 && t === 'newer');

    await rm(file);
    await until(gw.url + 'notes.txt', {}, (s) => s === 404);
  });
});
