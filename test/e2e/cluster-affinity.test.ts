// Cache affinity: three gateways (own caches, one upstream directory, one Redis) behind haproxy
// running config/haproxy/haproxy.cfg (path hashed on a consistent ring). Each file is fetched from
// the upstream by exactly one gateway, so the cluster caches every file once; killing one gateway
// moves only its files, the others keep serving theirs from cache.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../helpers/dav-servers.js';
import { removeDir, freeDir, sleep, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { haveHaproxy, startHaproxy, type Haproxy } from '../helpers/haproxy.js';
import { localHaproxyConfig } from '../helpers/haproxy-config.js';
import { haveRedis, startRedis, type RedisServer } from '../helpers/redis.js';

const missing = !haveRedis() ? 'redis-server' : !haveHaproxy() ? 'haproxy' : undefined;
const FILES = 30;
const SIZE = 1024 * 1024;
const names = Array.from({ length: FILES }, (_, i) => `f${String(i).padStart(2, '0')}.bin`);

async function upstreamBytes(g: GatewayProcess): Promise<number> {
  const text = await (await fetch(g.adminUrl + 'metrics')).text();
  return [...text.matchAll(/^davgate_upstream_read_bytes_total(?:\{[^}]*\})? (\S+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

describe('cache affinity: three gateways behind haproxy with consistent hashing', { skip: missing && `${missing} is not installed (scripts/test-deps.sh)` }, () => {
  let redis: RedisServer;
  let upstream = '';
  let gws: GatewayProcess[] = [];
  let lb: Haproxy;
  const content = new Map<string, Buffer>();
  /** file → index of the gateway that fetched it from the upstream */
  const owner = new Map<string, number>();

  before(async () => {
    redis = await startRedis();
    upstream = await freeDir('davgate-affinity-up-');
    for (const n of names) {
      content.set(n, randomBytes(SIZE));
      await writeFile(join(upstream, n), content.get(n)!);
    }
    gws = await Promise.all([0, 1, 2].map(() => startGatewayProcess({
      upstream, args: ['--ttl', '10m', '--log-level', 'warn'], env: { DAVGATE_REDIS_URL: redis.url },
    })));
    const statsPort = await freePort();
    lb = await startHaproxy(gws, (port) => localHaproxyConfig(port, statsPort, gws));
    await sleep(1500); // every server checked up
  });

  after(async () => {
    await lb?.stop();
    for (const g of gws) await g.stop();
    await redis?.stop();
    await removeDir(upstream);
  });

  /** GET through haproxy, check the body, return each live gateway's new upstream bytes. */
  async function getAndCount(name: string, live: number[]): Promise<number[]> {
    const before = await Promise.all(live.map((i) => upstreamBytes(gws[i]!)));
    const res = await fetch(lb.url + name);
    assert.equal(res.status, 200, name);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(content.get(name)!), `${name}: body differs`);
    // The counter moves as blocks arrive; give a background fetch a moment to settle.
    let delta: number[] = [];
    for (let i = 0; i < 20; i++) {
      const now = await Promise.all(live.map((j) => upstreamBytes(gws[j]!)));
      const d = now.map((v, k) => v - before[k]!);
      if (i > 0 && d.every((v, k) => v === delta[k])) break;
      delta = d;
      await sleep(25);
    }
    return delta;
  }

  test('each file is fetched from the upstream once, by one gateway; the second GET by none', { timeout: 120_000 }, async () => {
    for (const n of names) {
      const d = await getAndCount(n, [0, 1, 2]);
      const fetchedBy = d.flatMap((v, i) => (v > 0 ? [i] : []));
      assert.equal(fetchedBy.length, 1, `${n} fetched by gateways ${fetchedBy.join(',')} (${d.join(', ')} bytes)`);
      assert.equal(d[fetchedBy[0]!], SIZE, `${n}: the whole file, once`);
      owner.set(n, fetchedBy[0]!);
    }
    for (const n of names) assert.deepEqual(await getAndCount(n, [0, 1, 2]), [0, 0, 0], `${n}: the second GET is served from cache`);
    const totals = await Promise.all(gws.map(upstreamBytes));
    const perGateway = [0, 1, 2].map((i) => names.filter((n) => owner.get(n) === i).length);
    console.log(`upstream bytes per gateway: ${totals.join(', ')}; files per gateway: ${perGateway.join(', ')}`);
    assert.equal(totals.reduce((a, b) => a + b, 0), FILES * SIZE, 'the data set fetched once, not once per gateway');
    assert.ok(perGateway.filter((c) => c > 0).length >= 2, `the files are spread over the gateways (${perGateway.join(', ')})`);
  });

  test('SIGKILL of one gateway: its files move to the others, theirs stay cached', { timeout: 120_000 }, async () => {
    assert.equal(owner.size, FILES, 'needs the first test');
    const counts = [0, 1, 2].map((i) => names.filter((n) => owner.get(n) === i).length);
    const dead = counts.indexOf(Math.max(...counts));
    const live = [0, 1, 2].filter((i) => i !== dead);
    const moved = names.filter((n) => owner.get(n) === dead);
    process.kill(gws[dead]!.pid, 'SIGKILL');
    // Right away, before the health check notices: the failed connection is retried elsewhere.
    const first = await getAndCount(moved[0]!, live);
    assert.equal(first.reduce((a, b) => a + b, 0) >= SIZE, true, 'the first moved file came from the upstream');
    await sleep(2000); // marked down (inter 500ms, fall 2)
    for (const n of names.filter((x) => owner.get(x) !== dead)) {
      assert.deepEqual(await getAndCount(n, live), [0, 0], `${n}: still cached by its gateway, no new upstream bytes`);
    }
    for (const n of moved.slice(1)) {
      const d = await getAndCount(n, live);
      assert.equal(d.filter((v) => v > 0).length, 1, `${n}: fetched by one survivor (${d.join(', ')})`);
      assert.equal(d.reduce((a, b) => a + b, 0), SIZE, `${n}: once`);
    }
    for (const n of moved) assert.deepEqual(await getAndCount(n, live), [0, 0], `${n}: now cached by its new gateway`);
    console.log(`killed gateway ${dead} (${moved.length} files); ${FILES - moved.length} files kept their gateway and cache`);
  });
});
