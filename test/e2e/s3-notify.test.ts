import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  S3Client, CreateBucketCommand, PutObjectCommand, DeleteObjectCommand, ListObjectsV2Command, HeadBucketCommand,
  PutBucketNotificationConfigurationCommand,
} from '@aws-sdk/client-s3';
import { SNSClient, CreateTopicCommand } from '@aws-sdk/client-sns';
import pLimit from 'p-limit';
import { startCeph, type CephCluster } from '../helpers/ceph.js';
import { startGateway, type TestGateway } from '../helpers/inproc.js';
import { S3Upstream } from '../../src/upstream/s3.js';
import { ResilientUpstream } from '../../src/upstream/resilient.js';

// Bucket notifications from a real RADOS Gateway (Ceph 16.2) invalidating the gateway's cache:
// a sync topic pushes to POST /notify/s3 on the admin listener, with the secret as OpaqueData.
// The TTL is 10 minutes, so only a notification can make a change show within the test.

const BUCKET = 'notified';
const PROBE_BUCKET = 'probe';
const SECRET = 'davgate-notify-test-secret';

interface Record0 { eventName?: string; eventId?: string; opaqueData?: string; s3?: { bucket?: { name?: string }; object?: { key?: string } } }

/** Answers 200 to everything and keeps the bodies: to see what RGW really sends. */
async function captureServer(): Promise<{ server: Server; url: string; bodies: string[] }> {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => { bodies.push(Buffer.concat(chunks).toString()); res.end('ok'); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/capture`, bodies };
}

/** GETs through the gateway until `ok` holds for one; the ms it took. `attempts` counts them. */
async function until(url: string, ok: (status: number, text: string) => boolean, limitMs = 10_000, attempts = { n: 0 }): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const res = await fetch(url);
    const text = await res.text();
    attempts.n++;
    if (ok(res.status, text)) return performance.now() - t0;
    assert.ok(performance.now() - t0 < limitMs, `still ${res.status} ${JSON.stringify(text.slice(0, 40))} after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('S3 bucket notifications from Ceph RGW', { timeout: 300_000 }, () => {
  let ceph: CephCluster;
  let s3: S3Client;
  let sns: SNSClient;
  let gw: TestGateway;
  let capture: Awaited<ReturnType<typeof captureServer>>;

  const notifyBucket = async (bucket: string, topic: string, pushEndpoint: string) => {
    const { TopicArn } = await sns.send(new CreateTopicCommand({
      Name: topic, Attributes: { 'push-endpoint': pushEndpoint, persistent: 'false', OpaqueData: SECRET },
    }));
    console.log(`topic ${topic}: ${TopicArn}`);
    await s3.send(new PutBucketNotificationConfigurationCommand({
      Bucket: bucket,
      NotificationConfiguration: { TopicConfigurations: [{ Id: `${topic}-all`, TopicArn, Events: ['s3:ObjectCreated:*', 's3:ObjectRemoved:*'] }] },
    }));
  };

  before(async () => {
    ceph = await startCeph();
    const client = { endpoint: ceph.s3.endpoint, region: ceph.s3.region, credentials: { accessKeyId: ceph.s3.accessKeyId, secretAccessKey: ceph.s3.secretAccessKey } };
    s3 = new S3Client({ ...client, forcePathStyle: true });
    sns = new SNSClient(client);
    for (const b of [BUCKET, PROBE_BUCKET]) await s3.send(new CreateBucketCommand({ Bucket: b }));
    const upstreamConfig = {
      type: 's3', endpoint: ceph.s3.endpoint, region: ceph.s3.region, bucket: BUCKET, prefix: '', forcePathStyle: true,
      accessKeyId: ceph.s3.accessKeyId, secretAccessKey: ceph.s3.secretAccessKey, deleteMode: 'single',
    } as const;
    const inner = new ResilientUpstream(new S3Upstream(upstreamConfig), { timeout: 10_000, retries: 2, failureThreshold: 3, downFor: 500 });
    gw = await startGateway({ upstream: upstreamConfig, cache: { ttl: '10m' }, notify: { secret: SECRET } }, { upstream: inner });
    capture = await captureServer();
    await notifyBucket(PROBE_BUCKET, 'probe', capture.url);
    await notifyBucket(BUCKET, 'gateway', gw.adminUrl + 'notify/s3');
  });
  after(async () => {
    await gw?.close();
    capture?.server.close();
    s3?.destroy();
    sns?.destroy();
    await ceph?.stop();
  });

  test('what RGW sends: the record fields and how a key with spaces and non-ASCII is spelt', async () => {
    const key = 'dir/a b+c ü.txt';
    await s3.send(new PutObjectCommand({ Bucket: PROBE_BUCKET, Key: key, Body: 'probe' }));
    // A sync topic: the PUT returned after the endpoint answered.
    assert.equal(capture.bodies.length, 1);
    console.log(`RGW notification body: ${capture.bodies[0]}`);
    const r = (JSON.parse(capture.bodies[0]!) as { Records: Record0[] }).Records[0]!;
    assert.equal(r.eventName, 'ObjectCreated:Put');
    assert.equal(r.s3?.bucket?.name, PROBE_BUCKET);
    assert.equal(r.opaqueData, SECRET);
    assert.ok(r.eventId, 'an event id');
    console.log(`RGW key spelling: ${JSON.stringify(r.s3?.object?.key)} for ${JSON.stringify(key)}`);
    // RGW 16.2 sends the key as stored; the receiver also tries the encoded readings of other stores.
    assert.equal(r.s3?.object?.key, key);
  });

  test('an object overwritten directly in S3 is served new long before the 10-minute TTL', async () => {
    const key = 'docs/report ü.txt';
    const url = gw.url + 'docs/' + encodeURIComponent('report ü.txt');
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'version one' }));
    await until(url, (s, t) => s === 200 && t === 'version one');
    await gw.gateway.cache.flush();
    const before = gw.upstream.count('read');
    assert.equal(await (await fetch(url)).text(), 'version one');
    assert.equal(gw.upstream.count('read'), before, 'the second GET is a cache hit');
    const delays: number[] = [];
    const attempts = { n: 0 };
    for (const v of ['version two!', 'version three', 'version four..']) {
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: v }));
      delays.push(await until(url, (s, t) => s === 200 && t === v, 5_000, attempts));
    }
    console.log(`notification delay (PutObject returned -> first GET with the new bytes): ${delays.map((d) => d.toFixed(1)).join(', ')} ms, ${attempts.n} GETs for 3 versions`);
    // For comparison: a GET of an object the gateway has not seen (a stat and a block read upstream).
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'docs/unseen.txt', Body: 'unseen' }));
    const t0 = performance.now();
    assert.equal(await (await fetch(gw.url + 'docs/unseen.txt')).text(), 'unseen');
    console.log(`a cold GET through the gateway: ${(performance.now() - t0).toFixed(1)} ms`);
    assert.ok(Math.max(...delays) < 2_000);
    const metrics = await (await fetch(gw.adminUrl + 'metrics')).text();
    assert.match(metrics, /^davgate_notifications_total\{result="accepted"\} [1-9]/m);
    assert.match(metrics, /^davgate_notifications_total\{result="rejected"\} 0$/m);
  });

  test('an object created or deleted directly shows in its parent listing and as 404', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'list/one.txt', Body: '1' }));
    const listing = async () => (await (await fetch(gw.url + 'list/', { method: 'PROPFIND', headers: { depth: '1' } })).text());
    assert.match(await listing(), /one\.txt/);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'list/two.txt', Body: '2' }));
    assert.match(await listing(), /two\.txt/, 'the listing was forgotten');
    assert.equal(await (await fetch(gw.url + 'list/two.txt')).text(), '2');
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'list/two.txt' }));
    await until(gw.url + 'list/two.txt', (s) => s === 404, 2_000);
    assert.doesNotMatch(await listing(), /two\.txt/);
  });

  test('a forged notification is refused and changes nothing', async () => {
    const forged = JSON.stringify({ Records: [{ eventId: 'forged', opaqueData: 'not-the-secret-at-all', s3: { bucket: { name: BUCKET }, object: { key: 'list/one.txt' } } }] });
    const res = await fetch(gw.adminUrl + 'notify/s3', { method: 'POST', body: forged, headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 403);
  });

  test('a collection DELETE through the gateway with single-object deletes; radosgw survives', async () => {
    const limit = pLimit(16);
    await Promise.all(Array.from({ length: 40 }, (_, i) => limit(() => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `tree/sub${i % 4}/f${i}`, Body: String(i) })))));
    assert.equal((await fetch(gw.url + 'tree/sub1/f5')).status, 200);
    const t0 = performance.now();
    const del = await fetch(gw.url + 'tree', { method: 'DELETE' });
    console.log(`DELETE of a collection of 40 objects, one DeleteObject each: ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(del.status, 204);
    await s3.send(new HeadBucketCommand({ Bucket: BUCKET }));
    const left = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'tree/' }));
    assert.equal(left.KeyCount ?? 0, 0);
    assert.equal((await fetch(gw.url + 'tree/sub1/f5')).status, 404);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'after-delete.txt', Body: 'still here' }));
    assert.equal(await (await fetch(gw.url + 'after-delete.txt')).text(), 'still here');
  });
});
