// Configuration: defaults, units, the file < env < overrides layering, errors that name the
// key, and the CLI's handling of bad flags and of a cache directory already in use.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { MAIN_JS, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

const MiB = 1024 * 1024;

/** An environment without any DAVGATE_* variable of the machine running the tests. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DAVGATE_')) env[k] = v;
  return { ...env, ...extra };
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError, nothing was thrown');
}

describe('loadConfig', () => {
  const dirs: string[] = [];
  after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });

  test('defaults', () => {
    const c = loadConfig();
    assert.equal(c.listen, '127.0.0.1:8080');
    assert.equal(c.cache.blockSize, 4 * MiB);
    assert.equal(c.cache.ttl, 5000);
    assert.equal(c.admin.listen, '127.0.0.1:9180');
    assert.equal(c.webdav.allowInfiniteDepth, false);
    assert.equal(c.auth.allowAnonymousPublic, false);
    assert.equal(c.upstream.type, 'fs');
    assert.equal(c.upstream.type === 'fs' && c.upstream.root, resolve('./data'), 'relative paths are resolved');
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.cache), 'the configuration is frozen');
  });

  test('sizes and durations with units', () => {
    assert.equal(loadConfig({ overrides: { cache: { blockSize: '4MiB' } } }).cache.blockSize, 4 * MiB);
    assert.equal(loadConfig({ overrides: { cache: { blockSize: '512k' } } }).cache.blockSize, 512 * 1024);
    assert.equal(loadConfig({ overrides: { cache: { blockSize: '1m' } } }).cache.blockSize, MiB);
    assert.equal(loadConfig({ overrides: { cache: { blockSize: 65536 } } }).cache.blockSize, 65536);
    assert.equal(loadConfig({ overrides: { cache: { maxBytes: '10G' } } }).cache.maxBytes, 10 * 1024 * MiB);
    assert.equal(loadConfig({ overrides: { cache: { ttl: '5s' } } }).cache.ttl, 5000);
    assert.equal(loadConfig({ overrides: { cache: { ttl: '250ms' } } }).cache.ttl, 250);
    assert.equal(loadConfig({ overrides: { cache: { ttl: '2m' } } }).cache.ttl, 120_000);
    assert.equal(loadConfig({ overrides: { cache: { ttl: 0 } } }).cache.ttl, 0);
    assert.equal(loadConfig({ overrides: { cache: { ttl: '1500' } } }).cache.ttl, 1500, 'a bare number is milliseconds');
  });

  test('YAML file < DAVGATE_* environment < overrides', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'davgate-cfg-'));
    dirs.push(dir);
    const file = join(dir, 'davgate.yaml');
    await writeFile(file, 'cache:\n  ttl: 1s\n  blockSize: 64KiB\nlisten: 127.0.0.1:8181\nlogLevel: warn\n');

    const fromFile = loadConfig({ file, env: {} });
    assert.equal(fromFile.cache.ttl, 1000);
    assert.equal(fromFile.cache.blockSize, 64 * 1024);
    assert.equal(fromFile.listen, '127.0.0.1:8181');

    const fromEnv = loadConfig({ file, env: { DAVGATE_CACHE_TTL: '2s', DAVGATE_CACHE_BLOCK_SIZE: '' } });
    assert.equal(fromEnv.cache.ttl, 2000, 'the environment overrides the file');
    assert.equal(fromEnv.cache.blockSize, 64 * 1024, 'the rest of the file stays; an empty variable is no value');
    assert.equal(fromEnv.logLevel, 'warn');

    const fromOverrides = loadConfig({ file, env: { DAVGATE_CACHE_TTL: '2s' }, overrides: { cache: { ttl: '3s' } } });
    assert.equal(fromOverrides.cache.ttl, 3000, 'overrides (CLI flags) win');
    assert.equal(fromOverrides.cache.blockSize, 64 * 1024);

    const undefinedFlag = loadConfig({ file, env: { DAVGATE_CACHE_TTL: '2s' }, overrides: { cache: { ttl: undefined } } });
    assert.equal(undefinedFlag.cache.ttl, 2000, 'an absent flag does not erase the environment');
  });

  test('a bad or missing file is a ConfigError naming the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'davgate-cfg-'));
    dirs.push(dir);
    const missing = join(dir, 'nope.yaml');
    assert.match(configError(() => loadConfig({ file: missing })).message, /nope\.yaml/);
    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'cache: [unclosed\n');
    assert.match(configError(() => loadConfig({ file: broken })).message, /broken\.yaml/);
    const list = join(dir, 'list.yaml');
    await writeFile(list, '- a\n- b\n');
    assert.match(configError(() => loadConfig({ file: list })).message, /list\.yaml/);
  });

  test('a bad value is a ConfigError naming the key', () => {
    const e1 = configError(() => loadConfig({ overrides: { cache: { blockSize: 'banana' } } }));
    assert.match(e1.message, /cache\.blockSize/);
    assert.equal(e1.code, 'DAVGATE_CONFIG');
    assert.match(configError(() => loadConfig({ overrides: { cache: { blockSize: 1024 } } })).message, /cache\.blockSize/, 'below the minimum');
    assert.match(configError(() => loadConfig({ overrides: { cache: { ttl: 'soon' } } })).message, /cache\.ttl/);
    assert.match(configError(() => loadConfig({ overrides: { cache: { ttl: -1 } } })).message, /cache\.ttl/);
    assert.match(configError(() => loadConfig({ overrides: { listen: 'nohost' } })).message, /listen/);
    assert.match(configError(() => loadConfig({ overrides: { listen: '127.0.0.1:99999' } })).message, /listen/, 'port out of range');
    assert.match(configError(() => loadConfig({ overrides: { admin: { listen: '127.0.0.1:70000' } } })).message, /admin\.listen/);
    assert.match(configError(() => loadConfig({ overrides: { logLevel: 'loud' } })).message, /logLevel/);
    assert.match(configError(() => loadConfig({ env: { DAVGATE_CACHE_BLOCK_SIZE: 'banana' } })).message, /cache\.blockSize/, 'from the environment too');
    assert.match(configError(() => loadConfig({ overrides: { cache: { lowWatermark: 0.9, highWatermark: 0.8 } } })).message, /cache\.lowWatermark/);
  });

  test('several problems are all reported', () => {
    const msg = configError(() => loadConfig({ overrides: { cache: { blockSize: 'banana', ttl: 'soon' } } })).message;
    assert.match(msg, /cache\.blockSize/);
    assert.match(msg, /cache\.ttl/);
  });

  test('unknown keys are rejected', () => {
    assert.match(configError(() => loadConfig({ overrides: { cache: { blocksize: '4MiB' } } })).message, /blocksize/);
    assert.match(configError(() => loadConfig({ overrides: { colour: 'blue' } })).message, /colour/);
  });

  test('listening beyond loopback needs htpasswd or allowAnonymousPublic', () => {
    assert.match(configError(() => loadConfig({ overrides: { listen: '0.0.0.0:8080' } })).message, /listen/);
    assert.match(configError(() => loadConfig({ overrides: { listen: '[::]:8080' } })).message, /listen/);
    assert.equal(loadConfig({ overrides: { listen: '0.0.0.0:8080', auth: { allowAnonymousPublic: true } } }).listen, '0.0.0.0:8080');
    assert.equal(loadConfig({ overrides: { listen: '0.0.0.0:8080', auth: { htpasswd: '/etc/davgate.htpasswd' } } }).listen, '0.0.0.0:8080');
    assert.equal(loadConfig({ overrides: { listen: '127.0.0.2:8080' } }).listen, '127.0.0.2:8080');
    assert.equal(loadConfig({ overrides: { listen: '[::1]:8080' } }).listen, '[::1]:8080');
    assert.equal(loadConfig({ overrides: { listen: 'localhost:8080' } }).listen, 'localhost:8080');
  });
});

describe('CLI', () => {
  const dirs: string[] = [];
  after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });

  test('serve --block-size banana exits non-zero with one stderr line naming cache.blockSize', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'davgate-cli-'));
    dirs.push(dir);
    const r = spawnSync(process.execPath, [MAIN_JS, 'serve', '--block-size', 'banana', '--upstream', dir, '--cache', join(dir, 'cache'),
      '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], { env: cleanEnv(), encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.error, undefined);
    assert.notEqual(r.status, 0);
    assert.notEqual(r.status, null, 'killed by the timeout: it started serving');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `stderr:\n${r.stderr}`);
    assert.match(lines[0]!, /cache\.blockSize/);
    assert.doesNotMatch(r.stderr, /\s+at /, 'no stack trace');
  });

  test('a bad environment variable is reported the same way', () => {
    const r = spawnSync(process.execPath, [MAIN_JS, 'config', 'check'], { env: cleanEnv({ DAVGATE_CACHE_TTL: 'soon' }), encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(r.status, 0);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /cache\.ttl/);
  });

  test('a second gateway on the same cache directory fails clearly; the first keeps serving', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'davgate-shared-cache-'));
    const upstream = await mkdtemp(join(tmpdir(), 'davgate-shared-up-'));
    dirs.push(cache, upstream);
    let first: GatewayProcess | undefined;
    try {
      first = await startGatewayProcess({ cache, upstream, args: ['--log-level', 'silent'] });
      const lockBefore = await readFile(join(cache, 'LOCK'), 'utf8');
      const second = spawn(process.execPath, [MAIN_JS, 'serve', '--upstream', upstream, '--cache', cache,
        '--listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', '--log-level', 'silent'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let stdout = '';
      second.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
      second.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
      const exited = once(second, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      const timer = setTimeout(() => second.kill('SIGKILL'), 20_000);
      const [code, signal] = await exited;
      clearTimeout(timer);
      assert.equal(signal, null, `the second gateway did not exit by itself (stdout: ${stdout})`);
      assert.notEqual(code, 0);
      assert.ok(stderr.includes(cache), `stderr does not name the cache directory: ${stderr}`);
      assert.match(stderr, /in use/);
      assert.doesNotMatch(stdout, /serving WebDAV/);
      // The loser must not have taken or removed the winner's lock.
      assert.equal(await readFile(join(cache, 'LOCK'), 'utf8'), lockBefore);
      assert.ok(first.alive());
      const res = await fetch(first.url, { method: 'OPTIONS' });
      assert.equal(res.status, 200);
    } finally {
      await first?.stop();
    }
  });
});

describe('redis (several gateways, one namespace)', () => {
  test('absent by default; DAVGATE_REDIS_URL sets it with its defaults', () => {
    assert.equal(loadConfig({ env: cleanEnv() }).redis, undefined);
    const c = loadConfig({ env: cleanEnv({ DAVGATE_REDIS_URL: 'redis://10.0.0.5:6379' }) });
    assert.deepEqual(c.redis, { url: 'redis://10.0.0.5:6379', keyPrefix: 'davgate:', commandTimeout: 1000, ackTimeout: 500 });
  });

  test('a URL that is not redis:// or rediss:// is refused by its key', () => {
    assert.match(configError(() => loadConfig({ env: cleanEnv({ DAVGATE_REDIS_URL: 'http://x:1' }) })).message, /redis\.url/);
  });
});
