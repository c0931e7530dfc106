// The container image, built from the project's Dockerfile and run the way `docker run` would run it:
// its own ENTRYPOINT/CMD, user and HEALTHCHECK, /data and /cache as mounted volumes. No Docker engine
// is needed: buildah builds and runs it (test/helpers/image.ts, docs/docker.md "Tests").
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeDir, removeDir } from '../helpers/gateway-process.js';
import {
  REPO_DIR, STORE_DIR, TEST_IMAGE, buildImage, ensureBaseImage, imageConfig, imageSize, imageToolsMissing,
  lockStore, runContainer, withRootfs, type Container, type ImageConfig,
} from '../helpers/image.js';

const SKIP = imageToolsMissing();
const pkg = JSON.parse(readFileSync(join(REPO_DIR, 'package.json'), 'utf8')) as { name: string; version: string; license: string; description: string };
const WEBDAV = 'http://127.0.0.1:8080/';
const ADMIN = 'http://127.0.0.1:9180/';
const NODE_UID = 1000;
const FILE = 'image test ünïcode.bin';

describe('container image', { skip: SKIP ? `skipping the image tests: ${SKIP}` : false, timeout: 30 * 60_000 }, () => {
  let cfg: ImageConfig;
  let dataDir: string;
  let cacheDir: string;
  let ctr: Container | undefined;
  let release: (() => Promise<void>) | undefined;
  const payload = randomBytes(3 * 1024 * 1024 + 17); // several cache blocks' worth, odd length

  before(async () => {
    release = await lockStore();
    const t0 = Date.now();
    await ensureBaseImage((m) => console.log(`image: ${m}`));
    const { seconds } = await buildImage();
    cfg = await imageConfig(TEST_IMAGE);
    console.log(`image: ${TEST_IMAGE} built in ${seconds.toFixed(1)} s (base image ready after ${((Date.now() - t0) / 1000 - seconds).toFixed(1)} s), ` +
      `size ${await imageSize(TEST_IMAGE)}; storage ${STORE_DIR}`);
    // Like a host directory a user bind-mounts: owned by uid 1000, mode 0755 (the gateway must tighten its own dirs).
    dataDir = await freeDir('davgate-image-data-');
    cacheDir = await freeDir('davgate-image-cache-');
    for (const d of [dataDir, cacheDir]) {
      await chown(d, NODE_UID, NODE_UID);
      await chmod(d, 0o755);
    }
    ctr = await runContainer(TEST_IMAGE, { '/data': dataDir, '/cache': cacheDir });
  }, { timeout: 30 * 60_000 });

  after(async () => {
    await ctr?.remove();
    if (dataDir) await removeDir(dataDir);
    if (cacheDir) await removeDir(cacheDir);
    await release?.();
  });

  test('carries the OCI labels, ports, volumes, user and health check of the Dockerfile', () => {
    const labels = cfg.Labels ?? {};
    assert.equal(labels['org.opencontainers.image.version'], pkg.version, 'version label = package.json version');
    assert.equal(labels['org.opencontainers.image.title'], pkg.name);
    assert.equal(labels['org.opencontainers.image.licenses'], pkg.license);
    assert.equal(labels['org.opencontainers.image.description'], pkg.description);
    assert.ok('org.opencontainers.image.source' in labels, 'source label (empty unless --build-arg SOURCE=...)');
    assert.deepEqual(Object.keys(cfg.ExposedPorts ?? {}).sort(), ['8080/tcp', '9180/tcp']);
    assert.deepEqual(Object.keys(cfg.Volumes ?? {}).sort(), ['/cache', '/data']);
    assert.equal(cfg.User, 'node');
    assert.equal(cfg.Healthcheck?.Test?.[0], 'CMD', 'HEALTHCHECK kept (needs --format docker)');
    assert.ok((cfg.Entrypoint ?? []).includes('dist/src/main.js'), `ENTRYPOINT ${JSON.stringify(cfg.Entrypoint)}`);
  });

  test('the final stage has no build leftovers or dev dependencies; /data and /cache belong to uid 1000', async () => {
    await withRootfs(TEST_IMAGE, async (root) => {
      const sqlite = join(root, 'app/node_modules/sqlite3');
      assert.deepEqual(await readdir(join(sqlite, 'build')), ['Release']);
      assert.deepEqual(await readdir(join(sqlite, 'build/Release')), ['node_sqlite3.node']);
      for (const gone of ['deps', 'src', 'binding.gyp']) assert.ok(!existsSync(join(sqlite, gone)), `sqlite3/${gone} left in the image`);
      for (const dev of ['typescript', '@types/node', 'fast-check', 's3rver', 'webdav']) {
        assert.ok(!existsSync(join(root, 'app/node_modules', dev)), `dev dependency ${dev} in the image`);
      }
      const notLoaded = (await readdir(join(root, 'app/node_modules'), { recursive: true })).filter((f) => /\.(d\.[cm]?ts|map)$/.test(f));
      assert.deepEqual(notLoaded.slice(0, 5), [], 'type declarations or source maps of dependencies in the image');
      assert.ok(existsSync(join(root, 'app/node_modules/fastify/LICENSE')), 'licence texts must stay');
      for (const tool of ['usr/bin/g++', 'usr/bin/make', 'usr/bin/python3']) assert.ok(!existsSync(join(root, tool)), `/${tool} in the image`);
      assert.ok(existsSync(join(root, 'app/dist/src/main.js')));
      assert.ok(!existsSync(join(root, 'app/dist/test')), 'compiled tests in the image');
      assert.ok(!existsSync(join(root, 'app/src')), 'TypeScript sources in the image');
      const cache = await stat(join(root, 'cache'));
      assert.equal(cache.mode & 0o777, 0o700, `/cache mode ${(cache.mode & 0o777).toString(8)}`);
      assert.equal(cache.uid, NODE_UID);
      assert.equal((await stat(join(root, 'data'))).uid, NODE_UID);
    });
  });

  test('PUT a file, GET it back byte for byte; it lands in /data, owned by uid 1000', async () => {
    const tmp = await freeDir('davgate-image-payload-');
    const src = join(tmp, 'payload.bin');
    await writeFile(src, payload);
    try {
      const put = await ctr!.curl(WEBDAV + encodeURIComponent(FILE), ['-X', 'PUT', '--data-binary', `@${src}`, '-H', 'content-type: application/octet-stream']);
      assert.equal(put.status, 201, `PUT: ${put.body.toString()}`);
    } finally {
      await removeDir(tmp);
    }
    const onDisk = join(dataDir, FILE);
    assert.ok((await readFile(onDisk)).equals(payload), 'the upstream file differs from what was PUT');
    assert.equal((await stat(onDisk)).uid, NODE_UID);
    for (const pass of ['cold', 'cached']) {
      const get = await ctr!.curl(WEBDAV + encodeURIComponent(FILE));
      assert.equal(get.status, 200, pass);
      assert.equal(get.body.length, payload.length, pass);
      assert.ok(get.body.equals(payload), `${pass} GET returned other bytes`);
    }
    const range = await ctr!.curl(WEBDAV + encodeURIComponent(FILE), ['-H', 'range: bytes=1000-1999']);
    assert.equal(range.status, 206);
    assert.ok(range.body.equals(payload.subarray(1000, 2000)));
  });

  test('PROPFIND Depth: 1 lists the file with its size', async () => {
    const res = await ctr!.curl(WEBDAV, ['-X', 'PROPFIND', '-H', 'depth: 1']);
    assert.equal(res.status, 207);
    const xml = res.body.toString();
    assert.ok(xml.includes(encodeURIComponent(FILE)) || xml.includes(FILE), `listing without ${FILE}:\n${xml.slice(0, 2000)}`);
    assert.match(xml, new RegExp(`getcontentlength>${payload.length}<`));
  });

  test('/healthz on the admin port answers 200, and the image HEALTHCHECK command exits 0 inside the container', async () => {
    const health = await ctr!.curl(ADMIN + 'healthz');
    assert.equal(health.status, 200, health.body.toString());
    const metrics = await ctr!.curl(ADMIN + 'metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body.toString(), new RegExp(`^davgate_build_info\\{[^}]*version="${pkg.version}"`, 'm'));
    const check = cfg.Healthcheck?.Test ?? [];
    const argv = check[0] === 'CMD' ? check.slice(1) : check[0] === 'CMD-SHELL' ? ['/bin/sh', '-c', check[1]!] : [];
    assert.ok(argv.length > 0, `unexpected HEALTHCHECK ${JSON.stringify(check)}`);
    const r = await ctr!.exec(argv, 20_000);
    assert.equal(r.code, 0, `HEALTHCHECK exited ${r.code ?? r.signal}\n${r.stdout}\n${r.stderr}`);
    // The same command fails against a port nothing listens on: exit 0 above means something.
    const wrong = argv.map((a) => a.replace(':9180/', ':9181/'));
    assert.notDeepEqual(wrong, argv, 'the HEALTHCHECK does not name the admin port 9180');
    assert.notEqual((await ctr!.exec(wrong, 20_000)).code, 0, 'the HEALTHCHECK command passes even without a gateway');
  });

  test('runs as uid 1000; the cache directories it creates are 0700', async () => {
    const status = await readFile(`/proc/${ctr!.gatewayPid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    assert.match(status, /^Gid:\s+1000\s+1000\s+1000\s+1000$/m);
    const who = await ctr!.exec(['id', '-u']);
    assert.equal(who.stdout.trim(), '1000');
    for (const d of ['blocks', 'tmp']) {
      const st = await stat(join(cacheDir, d));
      assert.equal(st.mode & 0o777, 0o700, `/cache/${d} mode ${(st.mode & 0o777).toString(8)}`);
      assert.equal(st.uid, NODE_UID);
    }
    const inImage = await ctr!.exec(['stat', '-c', '%a %u', '/cache/blocks']);
    assert.equal(inImage.stdout.trim(), '700 1000');
  });

  test('the trimmed sqlite3 module loads and opens a database in the final image', async () => {
    const r = await ctr!.exec(['node', '-e',
      "new (require('sqlite3').Database)(':memory:').get('select sqlite_version() v', (e, r) => { if (e) throw e; console.log(r.v); })"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^3\.\d+\.\d+$/);
  });

  test('the cache CLI run in the container finds the running gateway\'s cache', async () => {
    const r = await ctr!.exec(['node', 'dist/src/main.js', 'cache', 'stats', '--json']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const stats = JSON.parse(r.stdout) as { dir: string; running: boolean; blocks: number };
    assert.equal(stats.dir, '/cache');
    assert.equal(stats.running, true);
    assert.ok(stats.blocks > 0, 'the file read above left no blocks in the cache');
  });

  test('SIGTERM to the gateway: a clean exit (code 0) within 10 s', async () => {
    const t0 = Date.now();
    process.kill(ctr!.gatewayPid, 'SIGTERM');
    const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000).unref());
    const res = await Promise.race([ctr!.exited, timeout]);
    assert.notEqual(res, 'timeout', `still running 10 s after SIGTERM\n${ctr!.stdout().slice(-2000)}`);
    assert.deepEqual(res, { code: 0, signal: null }, `stdout:\n${ctr!.stdout().slice(-2000)}\nstderr:\n${ctr!.stderr().slice(-2000)}`);
    console.log(`image: stopped ${Date.now() - t0} ms after SIGTERM`);
    assert.ok(!existsSync(join(cacheDir, 'LOCK')), 'the cache LOCK was not released');
  });
});
