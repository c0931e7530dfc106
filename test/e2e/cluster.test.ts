// Several gateways, one namespace: three real gateway processes (each its own cache directory)
// in front of one fs upstream directory, sharing one real redis-server for locks, dead
// properties and invalidation; then Redis goes away and comes back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createClient } from 'redis';
import { join } from 'node:path';
import { freeDir, removeDir, sleep, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { propertyupdate, propfindBody, raw } from '../helpers/http.js';
import { runAllLitmus } from '../helpers/litmus.js';
import { haveRedis, startRedis, type RedisServer } from '../helpers/redis.js';

const LOCKINFO = '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>t</D:owner></D:lockinfo>';

const lockOn = (base: string, path: string) => raw(base, 'LOCK', path, { 'content-type': 'application/xml', depth: '0', timeout: 'Second-60' }, LOCKINFO);
const tokenOf = (lockToken: string | string[] | undefined) => String(lockToken).replace(/^<|>$/g, '');

async function metric(adminUrl: string, name: string): Promise<number> {
  const text = (await raw(adminUrl, 'GET', '/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}

async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
  return Date.now() - t0;
}

describe('three gateways sharing one Redis', { skip: !haveRedis() && 'redis-server is not installed (scripts/test-deps.sh)' }, () => {
  let redis: RedisServer;
  let upstream = '';
  let gws: GatewayProcess[] = [];
  let A: string, B: string, C: string;

  before(async () => {
    redis = await startRedis();
    upstream = await freeDir('davgate-cluster-up-');
    // Ten minutes of TTL: whatever another gateway sees fresh comes from the bus, not from expiry.
    gws = await Promise.all([0, 1, 2].map(() => startGatewayProcess({
      upstream, args: ['--ttl', '10m', '--log-level', 'warn'], env: { DAVGATE_REDIS_URL: redis.url },
    })));
    [A, B, C] = gws.map((g) => g.url) as [string, string, string];
    for (const g of gws) await until('gateway ready', 10_000, async () => (await raw(g.adminUrl, 'GET', '/readyz')).status === 200);
  });

  after(async () => {
    for (const g of gws) await g.stop();
    await redis?.stop();
    await removeDir(upstream);
  });

  test('50 concurrent LOCKs over three gateways: exactly one wins', async () => {
    assert.equal((await raw(A, 'PUT', '/race.txt', {}, 'x')).status, 201);
    const bases = [A, B, C];
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => lockOn(bases[i % 3]!, '/race.txt')));
    const won = answers.filter((r) => r.status === 200);
    const lost = answers.filter((r) => r.status === 423);
    console.log(`lock race: ${won.length} winner(s), ${lost.length} refused (423), other: ${answers.length - won.length - lost.length}`);
    assert.equal(won.length, 1);
    assert.equal(lost.length, 49);
    assert.equal((await raw(C, 'UNLOCK', '/race.txt', { 'lock-token': won[0]!.headers['lock-token'] as string })).status, 204);
  });

  test('a lock taken on A binds B; its token works on B; UNLOCK through C', async () => {
    assert.equal((await raw(A, 'PUT', '/locked.txt', {}, 'v1')).status, 201);
    const l = await lockOn(A, '/locked.txt');
    assert.equal(l.status, 200);
    const token = tokenOf(l.headers['lock-token']);
    assert.equal((await raw(B, 'PUT', '/locked.txt', {}, 'v2')).status, 423, 'no token: locked');
    assert.equal((await raw(B, 'PUT', '/locked.txt', { if: `(<${token}>)` }, 'v2')).status, 204, 'with the token');
    const refresh = await raw(B, 'LOCK', '/locked.txt', { if: `(<${token}>)`, timeout: 'Second-120' });
    assert.equal(refresh.status, 200, 'refreshed through B');
    assert.equal((await raw(C, 'UNLOCK', '/locked.txt', { 'lock-token': `<${token}>` })).status, 204);
    assert.equal((await raw(B, 'PUT', '/locked.txt', {}, 'v3')).status, 204, 'free again');
  });

  test('PROPPATCH on A is seen by PROPFIND on B', async () => {
    const set = propertyupdate('<D:set><D:prop><Z:color>blue</Z:color></D:prop></D:set>', ' xmlns:Z="urn:z"');
    assert.equal((await raw(A, 'PROPPATCH', '/locked.txt', { 'content-type': 'application/xml' }, set)).status, 207);
    const pf = await raw(B, 'PROPFIND', '/locked.txt', { depth: '0', 'content-type': 'application/xml' }, propfindBody('<Z:color/>', ' xmlns:Z="urn:z"'));
    assert.equal(pf.status, 207);
    assert.match(pf.text, /<X0:color[^>]*>blue<\/X0:color>/);
  });

  test('PUT on A, GET on B: the new bytes at once, despite a 10-minute TTL', async () => {
    assert.equal((await raw(A, 'PUT', '/f.txt', {}, 'old')).status, 201);
    assert.equal((await raw(B, 'GET', '/f.txt')).text, 'old'); // B caches it
    const delays: number[] = [];
    let staleAtOnce = 0;
    for (let i = 0; i < 20; i++) {
      assert.equal((await raw(A, 'PUT', '/f.txt', {}, `new-${i}`)).status, 204);
      const t0 = performance.now();
      const first = (await raw(B, 'GET', '/f.txt')).text;
      if (first !== `new-${i}`) {
        staleAtOnce++;
        await until('B sees the change', 2000, async () => (await raw(B, 'GET', '/f.txt')).text === `new-${i}`);
      }
      delays.push(performance.now() - t0);
    }
    delays.sort((a, b) => a - b);
    console.log(`propagation A PUT -> B GET with new bytes: median ${delays[10]!.toFixed(1)} ms, max ${delays[19]!.toFixed(1)} ms; stale first reads: ${staleAtOnce}/20`);
    assert.equal(staleAtOnce, 0, 'B has dropped the old version before the writer is answered');
  });

  test('DELETE and MOVE on A are seen on B at once', async () => {
    await raw(A, 'PUT', '/gone.txt', {}, 'g');
    await raw(A, 'PUT', '/from.txt', {}, 'm');
    assert.equal((await raw(B, 'GET', '/gone.txt')).status, 200);
    assert.equal((await raw(B, 'GET', '/from.txt')).status, 200);
    assert.equal((await raw(B, 'GET', '/to.txt')).status, 404); // B remembers the name absent
    assert.equal((await raw(A, 'DELETE', '/gone.txt')).status, 204);
    assert.equal((await raw(B, 'GET', '/gone.txt')).status, 404);
    assert.equal((await raw(A, 'MOVE', '/from.txt', { destination: '/to.txt' })).status, 201);
    assert.equal((await raw(B, 'GET', '/from.txt')).status, 404);
    const moved = await raw(B, 'GET', '/to.txt');
    assert.equal(moved.status, 200);
    assert.equal(moved.text, 'm');
    assert.ok(await metric(gws[0]!.adminUrl, 'davgate_bus_messages_total{direction="sent"}') > 0);
    assert.ok(await metric(gws[1]!.adminUrl, 'davgate_bus_messages_total{direction="received"}') > 0);
  });

  test('MKCOL and a new member on A show in B\'s cached listing at once', async () => {
    assert.equal((await raw(A, 'MKCOL', '/dir')).status, 201);
    const list = async () => (await raw(B, 'PROPFIND', '/dir/', { depth: '1' })).text;
    assert.doesNotMatch(await list(), /new\.txt/); // B caches the listing for 10 minutes
    assert.equal((await raw(A, 'PUT', '/dir/new.txt', {}, 'n')).status, 201);
    assert.match(await list(), /\/dir\/new\.txt/);
  });

  test('admin invalidation on A reaches B', async () => {
    await raw(A, 'PUT', '/inv.txt', {}, 'cached');
    assert.equal((await raw(B, 'GET', '/inv.txt')).text, 'cached');
    await writeFile(join(upstream, 'inv.txt'), 'changed behind the gateways');
    assert.equal((await raw(B, 'GET', '/inv.txt')).text, 'cached', 'B trusts its record for the TTL');
    assert.equal((await raw(gws[0]!.adminUrl, 'POST', '/invalidate?path=/inv.txt')).status, 200);
    assert.equal((await raw(B, 'GET', '/inv.txt')).text, 'changed behind the gateways');
  });

  test('a peer that never acknowledges delays a write by redis.ackTimeout, no more', async () => {
    // A subscriber that counts as a receiver but never answers: a stuck gateway.
    const stuck = createClient({ url: redis.url });
    await stuck.connect();
    let heard = 0;
    await stuck.subscribe('davgate:invalidate', () => { heard++; });
    try {
      const before = await metric(gws[0]!.adminUrl, 'davgate_bus_ack_timeouts_total');
      const t0 = performance.now();
      assert.equal((await raw(A, 'PUT', '/stuck.txt', {}, 'w')).status, 201);
      const took = performance.now() - t0;
      console.log(`PUT with one stuck peer: ${took.toFixed(0)} ms (redis.ackTimeout 500 ms)`);
      assert.equal(heard, 1, 'the stuck peer received the change');
      assert.ok(took >= 450, `the writer waited for the stuck peer (${took.toFixed(0)} ms)`);
      assert.equal(await metric(gws[0]!.adminUrl, 'davgate_bus_ack_timeouts_total'), before + 1);
      assert.equal((await raw(B, 'GET', '/stuck.txt')).text, 'w', 'the live peers were told all the same');
    } finally {
      await stuck.unsubscribe();
      stuck.destroy();
    }
    const after = await metric(gws[0]!.adminUrl, 'davgate_bus_ack_timeouts_total');
    assert.equal((await raw(A, 'PUT', '/stuck.txt', {}, 'w2')).status, 204);
    assert.equal(await metric(gws[0]!.adminUrl, 'davgate_bus_ack_timeouts_total'), after, 'gone: no more waiting');
  });

  test('Redis down: LOCK is 503 with Retry-After at once, reads go on; back: all works again', async () => {
    await raw(A, 'PUT', '/kept.txt', {}, 'before');
    assert.equal((await raw(B, 'GET', '/kept.txt')).text, 'before'); // cached by B for 10 minutes
    await redis.down();
    const t0 = Date.now();
    const refused = await lockOn(A, '/kept.txt');
    const took = Date.now() - t0;
    console.log(`LOCK with Redis down: ${refused.status} in ${took} ms`);
    assert.equal(refused.status, 503);
    assert.ok(refused.headers['retry-after'], 'Retry-After');
    assert.ok(took < 1000, `answered within a second (${took} ms)`);
    assert.equal((await raw(B, 'PUT', '/kept.txt', {}, 'x')).status, 503, 'writes need the shared state');
    assert.equal((await raw(B, 'GET', '/kept.txt')).status, 200, 'reads go on');
    assert.equal((await raw(gws[0]!.adminUrl, 'GET', '/readyz')).status, 503, 'not ready without Redis');
    // A change B cannot hear about: made behind the gateways' backs while the bus is down.
    await writeFile(join(upstream, 'kept.txt'), 'changed meanwhile');
    await redis.up();
    const back = await until('LOCK works again', 10_000, async () => (await lockOn(A, '/kept.txt')).status === 200);
    console.log(`LOCK works again ${back} ms after Redis restarted`);
    await until('B ready again', 5000, async () => (await raw(gws[1]!.adminUrl, 'GET', '/readyz')).status === 200);
    await until('B drops what it cached while disconnected', 3000, async () => (await raw(B, 'GET', '/kept.txt')).text === 'changed meanwhile');
    const missed = await metric(gws[1]!.adminUrl, 'davgate_bus_missed_total');
    assert.ok(missed >= 1, `davgate_bus_missed_total on B: ${missed}`);
  });

  test('litmus through one of the three: 104 of 104', { timeout: 240_000 }, async () => {
    const r = await runAllLitmus(C);
    console.log(`litmus with Redis: ${r.passed}/${r.run} passed`);
    assert.equal(r.suites, 5, r.output.slice(-3000));
    assert.equal(r.passed, 104, r.output.slice(-6000));
  });
});
