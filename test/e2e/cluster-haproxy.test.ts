// Three gateways sharing one Redis behind haproxy (round robin, health checks on /healthz):
// litmus through the balancer, where consecutive requests land on different gateways, and one
// gateway killed with SIGKILL while the others keep serving.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { removeDir, freeDir, sleep, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { raw } from '../helpers/http.js';
import { haveHaproxy, startHaproxy, type Haproxy } from '../helpers/haproxy.js';
import { runAllLitmus } from '../helpers/litmus.js';
import { haveRedis, startRedis, type RedisServer } from '../helpers/redis.js';

const missing = !haveRedis() ? 'redis-server' : !haveHaproxy() ? 'haproxy' : undefined;

describe('three gateways behind haproxy', { skip: missing && `${missing} is not installed (scripts/test-deps.sh)` }, () => {
  let redis: RedisServer;
  let upstream = '';
  let gws: GatewayProcess[] = [];
  let lb: Haproxy;

  before(async () => {
    redis = await startRedis();
    upstream = await freeDir('davgate-haproxy-up-');
    gws = await Promise.all([0, 1, 2].map(() => startGatewayProcess({
      upstream, args: ['--ttl', '10m', '--log-level', 'warn'], env: { DAVGATE_REDIS_URL: redis.url },
    })));
    lb = await startHaproxy(gws);
    await sleep(1500); // every server checked up at least once
  });

  after(async () => {
    await lb?.stop();
    for (const g of gws) await g.stop();
    await redis?.stop();
    await removeDir(upstream);
  });

  test('litmus through the balancer: 104 of 104', { timeout: 300_000 }, async () => {
    const r = await runAllLitmus(lb.url);
    console.log(`litmus through haproxy: ${r.passed}/${r.run} passed`);
    assert.equal(r.suites, 5, r.output.slice(-3000));
    assert.equal(r.passed, 104, r.output.slice(-6000));
    // Round robin per request: litmus's steps (PUT then GET, LOCK then PUT) crossed gateways.
    const served = await Promise.all(gws.map(async (g) => (await raw(g.adminUrl, 'GET', '/metrics')).text.split('\n')
      .filter((l) => l.startsWith('davgate_requests_total{')).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)));
    console.log(`requests served per gateway during litmus: ${served.join(', ')}`);
    for (const n of served) assert.ok(n > 50, `every gateway took its share (${served.join(', ')})`);
  });

  test('kill -9 of one gateway: the others go on serving, and its lock is still enforced', { timeout: 60_000 }, async () => {
    assert.equal((await raw(lb.url, 'PUT', '/k.txt', {}, 'kept')).status, 201);
    assert.equal((await raw(lb.url, 'PUT', '/locked.txt', {}, 'v1')).status, 201);
    // Taken on the gateway about to die: the lock lives in Redis, not in that process.
    const taken = await raw(gws[0]!.url, 'LOCK', '/locked.txt', { 'content-type': 'application/xml', timeout: 'Second-300' },
      '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>');
    assert.equal(taken.status, 200);
    const token = String(taken.headers['lock-token']);
    let ok = 0;
    const failed: string[] = [];
    let killed = false;
    const worker = async () => {
      for (let i = 0; i < 100; i++) {
        if (i === 30 && !killed) {
          killed = true;
          process.kill(gws[0]!.pid, 'SIGKILL');
        }
        try {
          const r = await raw(lb.url, 'GET', '/k.txt', {}, undefined, 5000);
          if (r.status === 200 && r.text === 'kept') ok++;
          else failed.push(`${r.status}`);
        } catch (err) {
          failed.push((err as Error).message);
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    console.log(`kill -9 during 400 GETs through haproxy: ${ok} ok, ${failed.length} failed ${failed.slice(0, 5).join('; ')}`);
    assert.equal(failed.length, 0);
    const l = await raw(lb.url, 'LOCK', '/k.txt', { 'content-type': 'application/xml', timeout: 'Second-30' },
      '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>');
    assert.equal(l.status, 200, 'locks through the survivors');
    // Round robin: consecutive requests land on both survivors.
    for (let i = 0; i < 4; i++) assert.equal((await raw(lb.url, 'PUT', '/locked.txt', {}, 'v2')).status, 423, `PUT without the token, try ${i}`);
    assert.equal((await raw(lb.url, 'PUT', '/locked.txt', { if: `(${token})` }, 'v2')).status, 204, 'with the token');
    assert.equal((await raw(lb.url, 'GET', '/locked.txt')).text, 'v2');
  });
});
