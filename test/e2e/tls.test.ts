// HTTPS on the WebDAV listener with real clients (curl, rclone, litmus), and a certificate
// rotation (SIGHUP, `davgate reload`) in the middle of a transfer: the transfer goes on under the
// old certificate, new connections get the new one, a broken pair keeps the old one.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { MAIN_JS, freeDir, removeDir, sleep, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

const has = (cmd: string) => !spawnSync(cmd, ['--version'], { stdio: 'ignore' }).error;

/** A CA and two server certificates for 127.0.0.1 signed by it (openssl). */
function makeCerts(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=davgate test CA');
  for (const n of ['one', 'two']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=127.0.0.1 ${n}`);
    execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ${n}.ext`], { cwd: dir });
    ssl('x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${n}.pem`, '-days', '2', '-extfile', `${n}.ext`);
  }
}

/** The fingerprint of the certificate a new TLS connection is given. */
function servedFingerprint(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}

const fingerprintOf = async (file: string) => new X509Certificate(await readFile(file)).fingerprint256;

describe('TLS', { skip: has('openssl') ? undefined : 'openssl is not installed' }, () => {
  let dir: string;
  let gw: GatewayProcess;
  let ca: Buffer;
  let port: number;
  before(async () => {
    dir = await freeDir('davgate-tls');
    makeCerts(dir);
    await copyFile(join(dir, 'one.pem'), join(dir, 'server.pem'));
    await copyFile(join(dir, 'one.key'), join(dir, 'server.key'));
    ca = await readFile(join(dir, 'ca.pem'));
    gw = await startGatewayProcess({ args: ['--tls-cert', join(dir, 'server.pem'), '--tls-key', join(dir, 'server.key'), '--log-level', 'info'] });
    port = Number(new URL(gw.url).port);
  });
  after(async () => {
    await gw?.stop();
    await removeDir(dir);
  });

  test('serves https; plain http on the same port gets nothing useful', async () => {
    assert.match(gw.url, /^https:\/\//);
    const plain = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.status, () => 'refused');
    assert.notEqual(plain, 200);
  });

  test('curl: PUT, GET, PROPFIND over https with the CA', () => {
    const curl = (...a: string[]) => execFileSync('curl', ['-sS', '--fail', '--cacert', join(dir, 'ca.pem'), ...a], { encoding: 'utf8' });
    curl('-X', 'PUT', '--data-binary', 'hello tls', `${gw.url}curl.txt`);
    assert.equal(curl(`${gw.url}curl.txt`), 'hello tls');
    assert.match(curl('-X', 'PROPFIND', '-H', 'Depth: 1', gw.url), /curl\.txt/);
    const insecure = spawnSync('curl', ['-sS', '--fail', gw.url], { encoding: 'utf8' });
    assert.notEqual(insecure.status, 0, 'curl trusted an unknown CA');
  });

  test('rclone: copy in, list and read back over https', { skip: has('rclone') ? undefined : 'rclone is not installed' }, async () => {
    await writeFile(join(dir, 'local.bin'), Buffer.alloc(300_000, 7));
    const rclone = (...a: string[]) => execFileSync('rclone', [...a, '--webdav-url', gw.url, '--ca-cert', join(dir, 'ca.pem'), '--config', '/dev/null'], { encoding: 'utf8' });
    rclone('copyto', join(dir, 'local.bin'), ':webdav:rc/local.bin');
    assert.match(rclone('lsf', ':webdav:rc'), /local\.bin/);
    const back = execFileSync('rclone', ['cat', ':webdav:rc/local.bin', '--webdav-url', gw.url, '--ca-cert', join(dir, 'ca.pem'), '--config', '/dev/null']);
    assert.equal(back.length, 300_000);
  });

  test('litmus, every suite, over https', { skip: has('litmus') ? undefined : 'litmus is not installed' }, () => {
    const r = spawnSync('litmus', ['-k', gw.url], { cwd: dir, encoding: 'utf8', env: { ...process.env, SSL_CERT_FILE: join(dir, 'ca.pem') }, timeout: 180_000 });
    const summaries = [...r.stdout.matchAll(/<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed/g)];
    assert.deepEqual(summaries.map((m) => m[1]), ['basic', 'copymove', 'props', 'locks', 'http'], r.stdout.slice(-1500));
    for (const m of summaries) assert.equal(m[4], '0', `${m[1]}: ${m[0]}\n${r.stdout.slice(-1500)}`);
  });

  test('rotation mid-transfer: the transfer finishes on the old certificate, new connections get the new one', async () => {
    const size = 48 * 1024 * 1024;
    const data = Buffer.alloc(size, 5);
    await writeFile(join(gw.upstreamDir, 'big.bin'), data);
    assert.equal(await servedFingerprint(port, ca), await fingerprintOf(join(dir, 'one.pem')));
    // A reader that stops after its first chunk, holding the connection open mid-body.
    const transfer = new Promise<{ hash: string; fingerprint: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/big.bin', ca, servername: 'localhost', agent: false }, (res) => {
        const h = createHash('sha256');
        const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
        res.once('data', (c: Buffer) => {
          h.update(c);
          res.pause();
          paused();
          void resumeWhen.then(() => {
            res.on('data', (d: Buffer) => h.update(d));
            res.on('end', () => resolve({ hash: h.digest('hex'), fingerprint }));
            res.resume();
          });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    let paused!: () => void;
    let resume!: () => void;
    const isPaused = new Promise<void>((r) => { paused = r; });
    const resumeWhen = new Promise<void>((r) => { resume = r; });
    await isPaused;
    await copyFile(join(dir, 'two.pem'), join(dir, 'server.pem'));
    await copyFile(join(dir, 'two.key'), join(dir, 'server.key'));
    process.kill(gw.pid, 'SIGHUP');
    const two = await fingerprintOf(join(dir, 'two.pem'));
    for (let i = 0; (await servedFingerprint(port, ca)) !== two; i++) {
      assert.ok(i < 50, 'the new certificate was never served');
      await sleep(100);
    }
    resume();
    const done = await transfer;
    assert.equal(done.hash, createHash('sha256').update(data).digest('hex'), 'the transfer was damaged by the rotation');
    assert.equal(done.fingerprint, await fingerprintOf(join(dir, 'one.pem')));
  });

  test('`davgate reload` rotates too; a key that does not match keeps the certificate in use', async () => {
    await copyFile(join(dir, 'one.pem'), join(dir, 'server.pem'));
    await copyFile(join(dir, 'one.key'), join(dir, 'server.key'));
    const r = spawnSync(process.execPath, [MAIN_JS, 'reload', '--cache', gw.cacheDir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(await servedFingerprint(port, ca), await fingerprintOf(join(dir, 'one.pem')));
    await copyFile(join(dir, 'two.key'), join(dir, 'server.key')); // one.pem with two.key: a broken pair
    const bad = spawnSync(process.execPath, [MAIN_JS, 'reload', '--cache', gw.cacheDir], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /do not work together|key/i);
    assert.equal(await servedFingerprint(port, ca), await fingerprintOf(join(dir, 'one.pem')));
    assert.ok(gw.alive());
  });
});
