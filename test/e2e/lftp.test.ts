// lftp, a real client with its own habits: in WebDAV mode it sets the mtime with a PROPPATCH and
// writes a stray "Connection: keep-alive" header line after its body; its rm sends DELETE with
// Depth: 0. Both once failed through davgate.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeDir, removeDir, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

const missing = spawnSync('lftp', ['--version'], { stdio: 'ignore' }).error ? 'lftp is not installed (Debian package lftp)' : undefined;

describe('lftp', { skip: missing }, () => {
  let dir: string;
  let gw: GatewayProcess;
  before(async () => {
    dir = await freeDir('davgate-lftp');
    await writeFile(join(dir, 'local.txt'), 'from lftp\n');
    gw = await startGatewayProcess({ args: ['--log-level', 'info'] });
  });
  after(async () => {
    await gw?.stop();
    await removeDir(dir);
  });

  const lftp = (script: string) => spawnSync('lftp', ['-c', `set cmd:fail-exit yes; set net:max-retries 2; set net:timeout 10; set http:use-propfind true; open ${gw.url}; ${script}`], { cwd: dir, encoding: 'utf8', timeout: 60_000 });

  test('put (PUT, then PROPPATCH with a stray header line), ls, mkdir, mv, rm, rmdir', async () => {
    const r = lftp('put local.txt; mkdir sub; mv local.txt sub/moved.txt; cls -1 sub/');
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /moved\.txt/);
    assert.equal(await readFile(join(gw.upstreamDir, 'sub', 'moved.txt'), 'utf8'), 'from lftp\n');
    const proppatch = [...gw.stdout().matchAll(/"method":"PROPPATCH","url":"[^"]*","status":(\d+)/g)].map((m) => m[1]);
    assert.ok(proppatch.length > 0, 'lftp sent no PROPPATCH (its mtime after put)');
    assert.ok(proppatch.every((s) => s === '207'), `PROPPATCH answered ${proppatch.join(', ')}`);
    const rm = lftp('rm sub/moved.txt; rmdir sub');
    assert.equal(rm.status, 0, rm.stderr + rm.stdout);
    assert.deepEqual((await readdir(gw.upstreamDir)).filter((n) => !n.startsWith('.davgate-tmp-')), []);
    assert.doesNotMatch(gw.stdout(), /"level":50/, 'an error was logged');
  });
});
