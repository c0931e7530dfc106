// kill -9 in the middle of a PUT over the directory upstream: the old version stays intact, no
// partial file is ever visible, and what the crash left (the upload's temporary file) is removed
// when the gateway starts again.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeDir, removeDir, sleep, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

const UPLOADS = '.davgate-tmp-uploads';

/** A PUT that sends `sent` bytes of the `total` it promised, then waits (the process is killed under it). */
function hangingPut(base: string, path: string, total: number, sent: number): Promise<void> {
  const u = new URL(base);
  return new Promise((resolve) => {
    const req = request({ host: u.hostname, port: Number(u.port), method: 'PUT', path, headers: { 'content-length': total }, agent: false });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(sent, 0x41), () => resolve());
  });
}

describe('crash debris over the directory upstream', () => {
  let upstream: string;
  let dir: string;
  let gw: GatewayProcess | undefined;
  before(async () => {
    upstream = await freeDir('davgate-crash-up');
    dir = await freeDir('davgate-crash');
    // Idle temporary files older than 1 s count as a crash's debris (the default is an hour).
    await writeFile(join(dir, 'c.yaml'), 'upstream:\n  type: fs\n  tempMaxAge: 1s\n');
  });
  after(async () => {
    await gw?.stop();
    await removeDir(upstream);
    await removeDir(dir);
  });

  test('SIGKILL mid-PUT: old version intact, no partial object, debris gone after a restart', async () => {
    const v1 = Buffer.alloc(3 * 1024 * 1024, 0x31);
    await writeFile(join(upstream, 'doc.bin'), v1);
    const args = ['-c', join(dir, 'c.yaml'), '--log-level', 'warn'];
    gw = await startGatewayProcess({ upstream, args });
    await hangingPut(gw.url, '/doc.bin', 20 * 1024 * 1024, 4 * 1024 * 1024);
    await hangingPut(gw.url, '/new.bin', 20 * 1024 * 1024, 2 * 1024 * 1024);
    // Wait until both uploads are being written upstream, then kill the gateway outright.
    for (let i = 0; (await readdir(join(upstream, UPLOADS)).catch(() => [])).length < 2; i++) {
      assert.ok(i < 200, 'the uploads never reached the upstream directory');
      await sleep(25);
    }
    process.kill(gw.pid, 'SIGKILL');
    await gw.stop();
    gw = undefined;
    // What the crash left: the two temporary files, under a name no client can reach.
    assert.equal((await readdir(join(upstream, UPLOADS))).length, 2);
    assert.deepEqual((await readdir(upstream)).sort(), [UPLOADS, 'doc.bin']);
    assert.deepEqual(await readFile(join(upstream, 'doc.bin')), v1);

    await sleep(1200);
    gw = await startGatewayProcess({ upstream, args });
    assert.deepEqual(await readdir(join(upstream, UPLOADS)), [], 'the debris survived a restart');
    const listing = await (await fetch(gw.url, { method: 'PROPFIND', headers: { depth: '1' } })).text();
    assert.doesNotMatch(listing, /davgate-tmp/);
    assert.match(listing, /doc\.bin/);
    assert.doesNotMatch(listing, /new\.bin/);
    assert.equal((await fetch(gw.url + 'new.bin')).status, 404);
    const got = Buffer.from(await (await fetch(gw.url + 'doc.bin')).arrayBuffer());
    assert.ok(got.equals(v1), 'the old version was damaged');
    assert.equal((await fetch(gw.url + `${UPLOADS}/`)).status, 403, 'the upload directory is addressable');
  });
});
