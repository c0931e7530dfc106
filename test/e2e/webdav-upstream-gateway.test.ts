import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createClient } from 'webdav';
import { WebDavUpstream } from '../../src/upstream/webdav/upstream.js';
import { startApacheDav, startNginxDav, type DavServer } from '../helpers/dav-servers.js';
import { startGateway, type TestGateway } from '../helpers/inproc.js';

// davgate in front of another WebDAV server: through the cache end to end, and with each
// client's own credentials passed through (the identity then keys the cache).

const basic = (user: string, pass: string) => 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('gateway over nginx WebDAV', () => {
  let nginx: DavServer;
  let gw: TestGateway;
  before(async () => {
    nginx = await startNginxDav();
    gw = await startGateway({ upstream: { type: 'webdav', url: nginx.url }, cache: { blockSize: 1024 * 1024 } }, { upstream: new WebDavUpstream({ url: nginx.url }) });
  });
  after(async () => { await gw?.close(); await nginx?.stop(); });

  test('put, get (then from the cache), list, move, delete through the gateway', async () => {
    const client = createClient(gw.url);
    const data = randomBytes(5 * 1024 * 1024 + 7);
    await client.createDirectory('/docs');
    await client.putFileContents('/docs/a.bin', data);
    assert.equal(sha(await readFile(join(nginx.root, 'docs/a.bin'))), sha(data), 'stored on the nginx side');
    gw.upstream.reset();
    assert.equal(sha((await client.getFileContents('/docs/a.bin')) as Buffer), sha(data));
    const cold = gw.upstream.count('read');
    assert.ok(cold >= 1 && cold <= 6, `one read per 1 MiB block at most, got ${cold}`);
    gw.upstream.reset();
    assert.equal(sha((await client.getFileContents('/docs/a.bin')) as Buffer), sha(data));
    assert.equal(gw.upstream.count('read'), 0, 'second read from the cache');
    const list = (await client.getDirectoryContents('/docs')) as Array<{ basename: string }>;
    assert.deepEqual(list.map((e) => e.basename), ['a.bin']);
    await client.moveFile('/docs/a.bin', '/docs/b.bin');
    assert.equal(sha((await client.getFileContents('/docs/b.bin')) as Buffer), sha(data));
    await client.deleteFile('/docs');
    assert.equal(await client.exists('/docs'), false);
  });
});

describe('pass-through identity over Apache with per-user rights', () => {
  let apache: DavServer;
  let gw: TestGateway;
  before(async () => {
    apache = await startApacheDav({ users: { alice: 'alice-pw', bob: 'bob-pw' }, privateFor: 'alice' });
    await apache.seed('private/secret.txt', 'for alice only');
    await apache.seed('shared.txt', 'for everyone');
    const upstream = { type: 'webdav', url: apache.url, passThroughAuth: true };
    gw = await startGateway({ upstream }, { upstream: new WebDavUpstream({ url: apache.url, passThroughAuth: true }) });
  });
  after(async () => { await gw?.close(); await apache?.stop(); });

  const get = async (path: string, auth?: string) => {
    const res = await fetch(gw.url + path.slice(1), { headers: auth ? { authorization: auth } : {} });
    return { status: res.status, body: await res.text(), challenge: res.headers.get('www-authenticate') };
  };

  test('the second user never receives bytes cached for the first', async () => {
    const alice = await get('/private/secret.txt', basic('alice', 'alice-pw'));
    assert.equal(alice.status, 200);
    assert.equal(alice.body, 'for alice only');
    // Cached now for alice; bob, a wrong password and nobody must all still be asked upstream.
    gw.upstream.reset();
    const bob = await get('/private/secret.txt', basic('bob', 'bob-pw'));
    assert.equal(bob.status, 403);
    assert.ok(!bob.body.includes('for alice only'));
    const wrong = await get('/private/secret.txt', basic('alice', 'guess'));
    assert.equal(wrong.status, 401);
    assert.ok(!wrong.body.includes('for alice only'));
    assert.match(wrong.challenge ?? '', /^Basic /);
    const anonymous = await get('/private/secret.txt');
    assert.equal(anonymous.status, 401);
    assert.ok(!anonymous.body.includes('for alice only'));
    assert.ok(gw.upstream.count('stat') >= 3, 'each other identity went to the upstream');
    // And alice herself is served from her cache.
    gw.upstream.reset();
    assert.equal((await get('/private/secret.txt', basic('alice', 'alice-pw'))).body, 'for alice only');
    assert.equal(gw.upstream.count('read'), 0);
  });

  test('both users read what both may read', async () => {
    assert.equal((await get('/shared.txt', basic('alice', 'alice-pw'))).body, 'for everyone');
    assert.equal((await get('/shared.txt', basic('bob', 'bob-pw'))).body, 'for everyone');
  });
});
