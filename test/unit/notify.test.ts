// S3 bucket notifications: the parser and authenticator, and POST /notify/s3 on the admin app.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { sep } from 'node:path';
import { NotificationReceiver, keyReadings, parseRecords, pathOfKey } from '../../src/gateway/notify.js';
import { buildAdminApp } from '../../src/gateway/admin.js';
import { pathOfChange } from '../../src/upstream/fs-watch.js';
import { Metrics } from '../../src/metrics.js';
import { loadConfig, redacted } from '../../src/config.js';
import { BadRequestError, ConfigError, NotifySecretMismatchError, NotifySecretRequiredError } from '../../src/errors.js';
import type { CacheManager } from '../../src/cachemgr/cachemgr.js';

const SECRET = 'notify-secret-0123456789';
const BUCKET = 'media';

function record(key: string, o: { bucket?: string; eventId?: string; opaque?: string | null; name?: string } = {}): object {
  return {
    eventVersion: '2.2', eventSource: 'ceph:s3', eventName: o.name ?? 'ObjectCreated:Put',
    s3: { bucket: { name: o.bucket ?? BUCKET }, object: { key, size: 3, eTag: 'abc' } },
    eventId: o.eventId ?? `id-${key}`,
    ...(o.opaque === null ? {} : { opaqueData: o.opaque ?? SECRET }),
  };
}
const body = (...records: object[]) => JSON.stringify({ Records: records });
const receiver = (prefix = 'photos') => new NotificationReceiver({ secret: SECRET, bucket: BUCKET, prefix, dedupeEntries: 100 });

describe('notification receiver', () => {
  test('a record under the prefix names its DAV path; the directory marker its directory', () => {
    const out = receiver('/photos/').receive(body(record('photos/2024/a.jpg'), record('photos/2024/'), record('photos/')));
    assert.deepEqual(out.paths.sort(), ['/', '/2024', '/2024/a.jpg']);
    assert.deepEqual([out.accepted, out.duplicate, out.ignored], [3, 0, 0]);
  });

  test('another bucket, a key outside the prefix, a record without a key: ignored, not refused', () => {
    const out = receiver().receive(body(record('photos/x', { bucket: 'other' }), record('music/x'), { opaqueData: SECRET, s3: { bucket: { name: BUCKET } } }));
    assert.deepEqual(out.paths, []);
    assert.equal(out.ignored, 3);
  });

  test('a redelivered event is counted a duplicate and not invalidated again', () => {
    const r = receiver();
    assert.equal(r.receive(body(record('photos/a', { eventId: 'e1' }))).accepted, 1);
    const again = r.receive(body(record('photos/a', { eventId: 'e1' }), record('photos/b', { eventId: 'e1' })));
    assert.deepEqual([again.accepted, again.duplicate], [1, 1], 'the same id on another key is another change');
    assert.deepEqual(again.paths, ['/b']);
  });

  test('URL-encoded keys with spaces and non-ASCII names: every reading is invalidated', () => {
    const encoded = 'photos/' + encodeURIComponent('Ferien 2024') + '/' + encodeURIComponent('Zürich café.jpg');
    const out = receiver().receive(body(record(encoded), record('photos/form+encoded+name.txt'), record('photos/raw name ü.txt')));
    assert.ok(out.paths.includes('/Ferien 2024/Zürich café.jpg'));
    assert.ok(out.paths.includes('/form encoded name.txt'), 'form encoding (AWS)');
    assert.ok(out.paths.includes('/form+encoded+name.txt'), 'or a literal plus');
    assert.ok(out.paths.includes('/raw name ü.txt'), 'a key sent as stored');
    assert.deepEqual(keyReadings('a%2Bb+c').sort(), ['a%2Bb+c', 'a+b c', 'a+b+c'].sort());
    assert.deepEqual(keyReadings('100%'), ['100%'], 'not percent-encoding: taken as it is');
  });

  test('keys no DAV path can name are ignored', () => {
    assert.equal(pathOfKey('photos/../etc/passwd', 'photos/'), undefined);
    assert.equal(pathOfKey('photos/a\0b', 'photos/'), undefined);
    assert.equal(pathOfKey('photosx/a', 'photos/'), undefined);
    assert.equal(pathOfKey('a/b', ''), '/a/b');
  });

  test('without a secret: 401; with another one: 403, in the body or presented', () => {
    const r = receiver();
    assert.throws(() => r.receive(body(record('photos/a', { opaque: null }))), NotifySecretRequiredError);
    assert.throws(() => r.receive(body(record('photos/a'), record('photos/b', { opaque: null }))), NotifySecretRequiredError, 'every record carries it');
    assert.throws(() => r.receive(body(record('photos/a', { opaque: SECRET + 'x' }))), NotifySecretMismatchError);
    assert.throws(() => r.receive(body()), NotifySecretRequiredError, 'no record, nothing carries a secret');
    assert.throws(() => r.receive(body(record('photos/a')), 'wrong'), NotifySecretMismatchError, 'a presented secret is checked first');
    assert.throws(() => r.receive('not json', 'wrong'), NotifySecretMismatchError, 'before the body is read');
    assert.equal(r.receive(body(record('photos/a', { opaque: null })), SECRET).accepted, 1, 'a presented secret replaces opaqueData');
  });

  test('malformed bodies are BadRequestErrors', () => {
    for (const b of [undefined, '', 'not json', 'null', '[]', '{"Records":{}}', '{"Records":[1]}', '{"Records":[null]}', '{"Event":"s3:TestEvent"}']) {
      assert.throws(() => parseRecords(b), BadRequestError, String(b));
    }
    assert.deepEqual(parseRecords(Buffer.from('{"Records":[]}')), []);
  });
});

describe('POST /notify/s3', () => {
  const build = (notify: boolean, token?: string) => {
    const changes: string[][] = [];
    const metrics = new Metrics({ defaultMetrics: false });
    const app = buildAdminApp({} as CacheManager, metrics, {
      logLevel: 'silent', token,
      notify: notify ? { receiver: receiver(), maxBodyBytes: 4096, onStoreChange: (p) => changes.push(p) } : undefined,
    });
    const count = async (result: string) => Number(new RegExp(`^davgate_notifications_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(await metrics.registry.metrics())?.[1]);
    return { app, changes, count };
  };

  test('accepts, invalidates and counts; redeliveries and refusals are counted too', async () => {
    const { app, changes, count } = build(true, 'admin-token-0123456789');
    const post = (payload: string, headers: Record<string, string> = { 'content-type': 'application/json' }, url = '/notify/s3') => app.inject({ method: 'POST', url, payload, headers });
    const ok = await post(body(record('photos/a b.txt', { eventId: 'x1' })));
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(ok.json(), { accepted: 1, duplicate: 0, ignored: 0 });
    assert.deepEqual(changes, [['/a b.txt']]);
    assert.equal((await post(body(record('photos/a b.txt', { eventId: 'x1' })))).statusCode, 200, 'a redelivery is accepted');
    assert.equal(changes.length, 1, 'and not invalidated again');
    assert.equal((await post(body(record('photos/c', { opaque: null })))).statusCode, 401);
    assert.equal((await post(body(record('photos/c', { opaque: 'forged-secret-000000' })))).statusCode, 403);
    assert.equal((await post(body(record('photos/c', { opaque: null })), {}, '/notify/s3?token=' + SECRET)).statusCode, 200, 'token query');
    assert.equal((await post(body(record('photos/d', { opaque: null })), { authorization: `Bearer ${SECRET}` })).statusCode, 200, 'bearer header');
    assert.equal((await post('{"Records":', { 'content-type': 'text/plain' })).statusCode, 400);
    assert.equal((await post(body(record('photos/' + 'x'.repeat(5000))))).statusCode, 413);
    assert.equal((await post(body(record('photos/e')), {})).statusCode, 200, 'no content type at all');
    assert.deepEqual([await count('received'), await count('accepted'), await count('duplicate'), await count('rejected')], [5, 4, 1, 4]);
    assert.equal((await app.inject({ method: 'POST', url: '/invalidate' })).statusCode, 401, 'the admin token still guards everything else');
    await app.close();
  });

  test('without a configured secret the endpoint does not exist', async () => {
    const { app } = build(false);
    assert.equal((await app.inject({ method: 'POST', url: '/notify/s3', payload: body(record('photos/a')) })).statusCode, 404);
    await app.close();
  });
});

describe('configuration and the fs watcher', () => {
  test('notify.secret needs an s3 upstream; deleteMode and watch from the environment', () => {
    assert.throws(() => loadConfig({ env: { DAVGATE_NOTIFY_SECRET: SECRET } }), (e: unknown) => e instanceof ConfigError && /notify\.secret/.test(e.message));
    const s3 = loadConfig({ env: { DAVGATE_UPSTREAM_TYPE: 's3', DAVGATE_UPSTREAM_BUCKET: 'b', DAVGATE_UPSTREAM_DELETE_MODE: 'single', DAVGATE_NOTIFY_SECRET: SECRET } });
    assert.equal(s3.upstream.type === 's3' && s3.upstream.deleteMode, 'single');
    assert.equal(s3.notify.secret, SECRET);
    assert.equal((redacted(s3) as { notify: { secret: string } }).notify.secret, '***', 'masked by config check');
    const batch = loadConfig({ env: { DAVGATE_UPSTREAM_TYPE: 's3', DAVGATE_UPSTREAM_BUCKET: 'b' } }).upstream;
    assert.equal(batch.type === 's3' && batch.deleteMode, 'batch');
    const watched = loadConfig({ env: { DAVGATE_UPSTREAM_WATCH: 'true' } }).upstream;
    assert.equal(watched.type === 'fs' && watched.watch, true);
    const plain = loadConfig().upstream;
    assert.equal(plain.type === 'fs' && plain.watch, false);
  });

  test('watcher names become DAV paths; the upstream\'s temporaries are not changes', () => {
    assert.equal(pathOfChange(['a', 'b c.txt'].join(sep)), '/a/b c.txt');
    assert.equal(pathOfChange(null), '/');
    assert.equal(pathOfChange('.davgate-tmp-uploads' + sep + '0123'), undefined);
    assert.equal(pathOfChange('dir' + sep + '.davgate-tmp-abc'), undefined);
  });
});
