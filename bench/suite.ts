// The main benchmark: davgate against rclone (`serve webdav --vfs-cache-mode full`), nginx
// (dav-ext) and Apache (mod_dav) on one generated data set, one row per figure of the issue.
//
// Upstreams: "dir" = the directory nginx serves (davgate --upstream DIR, rclone serve DIR);
// "WebDAV" = that nginx over HTTP (davgate --upstream http://nginx/, rclone remote `up:` of
// type webdav); "S3" = a Ceph RADOS Gateway bucket holding big.bin. nginx and Apache serve the
// directory directly: they have no cache, so their figures appear in the cold rows too.
import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { S3Client, CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { CephCluster } from '../test/helpers/ceph.js';
import { generate, linkInto } from './dataset.js';
import { expect, propfindEntries, propfindSeconds } from './http.js';
import { dropPageCache, fileSize, getSeconds, peakRssUnderLoad, putDurable, sameSampled, writeBack, wrk } from './measure.js';
import { addRun, fail, newRow, type Column, type Row } from './report.js';
import { startApache, startDavgate, startNginx, startRclone, startS3, type DavBaseline, type Server } from './servers.js';
import { MiB, errMsg, log } from './util.js';

export interface Settings {
  quick: boolean;
  runs: number;
  bigSize: number;
  entries: number;
  wrkSeconds: number;
  streams: number;
  /** Row ids to run (a section runs when one of its rows is asked for); all when absent. */
  only?: ReadonlySet<string>;
}

type Up = 'dir' | 'webdav';
const UP_LABEL: Record<Up, string> = { dir: 'dir upstream', webdav: 'WebDAV upstream (nginx)' };

/** Runs `fn` `runs` times for one column of a row; a failure marks the column n/a and moves on. */
async function measureInto(row: Row, col: Column, runs: number, fn: (i: number) => Promise<number>): Promise<void> {
  try {
    for (let i = 0; i < runs; i++) addRun(row, col, await fn(i));
  } catch (e) {
    fail(row, col, errMsg(e));
    log(`  ${row.id} / ${col}: FAILED: ${errMsg(e)}`);
  }
}

/** Copies the direct servers' runs (no cache: no cold/hot distinction) into another row. */
function copyDirect(from: Row, to: Row): void {
  for (const c of ['nginx', 'apache'] as const) {
    if (from.runs[c]) to.runs[c] = [...from.runs[c]];
    if (from.errors?.[c]) fail(to, c, from.errors[c]);
  }
}

export async function runMain(s: Settings): Promise<{ rows: Row[]; notes: string[] }> {
  const notes: string[] = [];
  const wants = (...ids: string[]) => !s.only || ids.some((id) => s.only!.has(id));
  const big = `${s.bigSize / MiB} MiB`;
  const isRoot = process.getuid?.() === 0;

  // Ceph takes a while to come up: start it now, in the background, while the data is written.
  log('starting Ceph (background), nginx');
  const ceph: Promise<CephCluster | Error> | undefined = wants('get-big-cold-s3')
    ? startS3().catch((e: unknown) => (e instanceof Error ? e : new Error(String(e)))) : undefined;
  const nginx = await startNginx();
  log(`generating the data set in ${nginx.root}: ${big} big.bin, ${s.entries} entries in many/`);
  await generate(nginx.root, s);
  const source = { path: join(nginx.root, 'big.bin'), size: s.bigSize };
  let apache: DavBaseline | undefined;
  try {
    apache = await startApache();
    await linkInto(nginx.root, apache.root, isRoot ? 'www-data:www-data' : undefined);
  } catch (e) {
    notes.push(`Apache could not run: ${errMsg(e)}`);
    log(`apache: ${errMsg(e)}`);
  }

  const rcloneUp = { RCLONE_CONFIG_UP_TYPE: 'webdav', RCLONE_CONFIG_UP_URL: nginx.url, RCLONE_CONFIG_UP_VENDOR: 'other' };
  const upstreamOf: Record<Up, string> = { dir: nginx.root, webdav: nginx.url };
  const startFresh = (up: Up, col: 'davgate' | 'rclone'): Promise<Server> =>
    col === 'davgate' ? startDavgate(upstreamOf[up]) : startRclone(up === 'dir' ? nginx.root : 'up:', { env: rcloneUp });

  log('starting the long-lived davgate and rclone instances (dir and WebDAV upstreams)');
  const hot: Record<Up, Partial<Record<'davgate' | 'rclone', Server>>> = { dir: {}, webdav: {} };
  for (const up of ['dir', 'webdav'] as const) {
    for (const col of ['davgate', 'rclone'] as const) {
      try { hot[up][col] = await startFresh(up, col); } catch (e) { notes.push(`${col} (${up}) could not start: ${errMsg(e)}`); }
    }
  }
  const direct: Partial<Record<'nginx' | 'apache', Server>> = { nginx, ...(apache ? { apache } : {}) };
  const bySrv = (up: Up): Array<[Column, Server]> => [
    ...Object.entries(hot[up]) as Array<[Column, Server]>,
    ...(up === 'dir' ? Object.entries(direct) as Array<[Column, Server]> : []),
  ];

  // Every server must serve the complete data set before anything is timed.
  for (const up of ['dir', 'webdav'] as const) {
    for (const [col, srv] of bySrv(up)) {
      await expect(srv.url + 'small.bin', 'GET', [200], {}, { bytes: 4096 });
      const n = await propfindEntries(srv.url + 'many/');
      if (n !== s.entries + 1) throw new Error(`${col} (${up}): PROPFIND many/ lists ${n - 1} entries, expected ${s.entries}`);
    }
  }

  const rows: Row[] = [];
  const row = (r: Row): Row => { rows.push(r); return r; };

  // ---- S3 first, so Ceph can be stopped before the other measurements ----
  if (wants('get-big-cold-s3')) {
    const s3Row = row(newRow('get-big-cold-s3', `GET ${big} cold, S3 upstream (Ceph RGW)`, 's', 'lower', { rclone: 0.8 }));
    const cluster = (await ceph)!;
    if (cluster instanceof Error) {
      notes.push(`Ceph could not run: ${errMsg(cluster)}`);
      fail(s3Row, 'davgate', 'no Ceph'); fail(s3Row, 'rclone', 'no Ceph');
    } else {
      try {
        await coldS3(s, s3Row, cluster, source);
      } catch (e) {
        notes.push(`S3 cold reads failed: ${errMsg(e)}`);
        log(`S3: ${errMsg(e)}`);
        for (const c of ['davgate', 'rclone'] as const) if (!s3Row.errors?.[c]) fail(s3Row, c, errMsg(e));
      } finally {
        log('stopping Ceph');
        await cluster.stop();
      }
    }
  }

  // ---- 4 KiB hot GET with wrk, run-major so that drift spreads over every server ----
  if (wants('get-4k-hot')) {
    const small = row(newRow('get-4k-hot', `GET 4 KiB hot (wrk -t1 -c16, ${s.wrkSeconds} s), dir upstream`, 'req/s', 'higher', { apache: 1, nginx: 0.4 }));
    log('GET 4 KiB hot: warm-up');
    const wrkServers = bySrv('dir');
    for (const [col, srv] of wrkServers) {
      try {
        for (let i = 0; i < 20; i++) await expect(srv.url + 'small.bin', 'GET', [200]);
        await wrk(srv.url + 'small.bin', 16, 1);
      } catch (e) { fail(small, col, errMsg(e)); }
    }
    for (let i = 0; i < s.runs; i++) {
      for (const [col, srv] of wrkServers) {
        if (small.errors?.[col]) continue;
        log(`GET 4 KiB hot: ${col} run ${i + 1}/${s.runs}`);
        await measureInto(small, col, 1, async () => (await wrk(srv.url + 'small.bin', 16, s.wrkSeconds)).reqPerSec);
      }
    }
  }

  const hotGet: Partial<Record<Up, Row>> = {};
  const hotProp: Partial<Record<Up, Row>> = {};
  let dropped = true;
  // ---- big GET and PROPFIND, hot (after a warm-up on the long-lived instances) ----
  if (wants('get-big-hot-dir', 'get-big-hot-webdav', 'propfind-hot-dir', 'propfind-hot-webdav', 'get-big-cold-dir', 'get-big-cold-webdav')) {
    for (const up of ['dir', 'webdav'] as const) {
      // The hot WebDAV row is judged against rclone (the direct servers have no upstream there).
      const g = hotGet[up] = row(newRow(`get-big-hot-${up}`, `GET ${big} hot, ${UP_LABEL[up]}`, 'MiB/s', 'higher', up === 'dir' ? { nginx: 1 } : { rclone: 1.2 }));
      const p = hotProp[up] = row(newRow(`propfind-hot-${up}`, `PROPFIND depth 1, ${s.entries} entries, hot, ${UP_LABEL[up]}`, 's', 'lower', { nginx: 1.5 }));
      log(`GET ${big} + PROPFIND hot, ${up}: warm-up`);
      for (const [col, srv] of bySrv(up)) {
        try { await getSeconds(srv.url + 'big.bin', s.bigSize); } catch (e) { fail(g, col, errMsg(e)); } // fills the cache
        try { await propfindSeconds(srv.url + 'many/'); } catch (e) { fail(p, col, errMsg(e)); }
      }
      for (let i = 0; i < s.runs; i++) {
        for (const [col, srv] of bySrv(up)) {
          log(`GET ${big} + PROPFIND hot, ${up}: ${col} run ${i + 1}/${s.runs}`);
          if (!g.errors?.[col]) await measureInto(g, col, 1, async () => s.bigSize / MiB / await getSeconds(srv.url + 'big.bin', s.bigSize));
          if (!p.errors?.[col]) await measureInto(p, col, 1, () => propfindSeconds(srv.url + 'many/'));
        }
      }
      if (up === 'webdav') { copyDirect(hotGet.dir!, g); copyDirect(hotProp.dir!, p); }
    }
  }

  // ---- cold: a fresh process with an empty cache per run; PROPFIND, then GET big.bin ----
  if (wants('get-big-cold-dir', 'get-big-cold-webdav', 'propfind-cold-dir', 'propfind-cold-webdav')) {
    for (const up of ['dir', 'webdav'] as const) {
      const g = row(newRow(`get-big-cold-${up}`, `GET ${big} cold, ${UP_LABEL[up]}`, 's', 'lower', { rclone: 0.8 }));
      const p = row(newRow(`propfind-cold-${up}`, `PROPFIND depth 1, ${s.entries} entries, cold, ${UP_LABEL[up]}`, 's', 'lower', { rclone: 0.5 }));
      for (let i = 0; i < s.runs; i++) {
        for (const col of ['davgate', 'rclone'] as const) {
          if (g.errors?.[col]) continue;
          log(`cold ${up}: ${col} run ${i + 1}/${s.runs}`);
          let srv: Server | undefined;
          try {
            dropped = (await dropPageCache()) && dropped; // the upstream's files come from disk for everyone alike
            srv = await startFresh(up, col);
            addRun(p, col, await propfindSeconds(srv.url + 'many/'));
            addRun(g, col, await getSeconds(srv.url + 'big.bin', s.bigSize));
          } catch (e) {
            fail(g, col, errMsg(e)); fail(p, col, errMsg(e));
            log(`  cold ${up} / ${col}: FAILED: ${errMsg(e)}`);
          } finally {
            await srv?.stop();
          }
        }
      }
      // direct servers: the seconds of their (uncached) GET, from the hot rows' runs
      for (const c of ['nginx', 'apache'] as const) {
        const mibps = hotGet.dir?.runs[c]; // absent when --only left the hot rows out
        if (mibps) g.runs[c] = mibps.map((v) => s.bigSize / MiB / v);
      }
      if (hotProp.dir) copyDirect(hotProp.dir, p);
    }
    notes.push(dropped ? 'Cold rows: the page cache was dropped before every cold run of every server.'
      : 'Cold rows: the page cache could not be dropped (not root?): upstream files may come from memory.');
  }

  // ---- PUT until durable upstream ----
  if (wants('put-big-durable-dir', 'put-big-durable-webdav')) {
    for (const up of ['dir', 'webdav'] as const) {
      const r = row(newRow(`put-big-durable-${up}`, `PUT ${big} until durable, ${UP_LABEL[up]}`, 's', 'lower', { nginx: 1.5 }));
      const responses: Record<string, number[]> = {};
      for (let i = 0; i < s.runs; i++) {
        for (const [col, srv] of bySrv(up)) {
          if (r.errors?.[col]) continue;
          log(`PUT ${big} durable, ${up}: ${col} run ${i + 1}/${s.runs}`);
          const root = col === 'apache' ? apache!.root : nginx.root;
          const name = `puts/${col}-${up}-${i}.bin`;
          await writeBack();
          await measureInto(r, col, 1, async () => {
            const res = await putDurable(srv.url + name, source, () => fileSize(join(root, name)));
            if (!(await sameSampled(join(root, name), source.path, source.size))) throw new Error('uploaded bytes differ from the source');
            (responses[col] ??= []).push(res.responseSeconds);
            await unlink(join(root, name)).catch(() => undefined);
            return res.seconds;
          });
        }
      }
      r.extra = { responseSeconds: responses };
      if (up === 'webdav') copyDirect(rows.find((x) => x.id === 'put-big-durable-dir')!, r);
    }
    notes.push('PUT rows: dirty pages were written back (sync) before every run of every server.');
    notes.push('rclone runs with its defaults besides --vfs-cache-mode full: a PUT is acknowledged from its cache and uploaded after --vfs-write-back (5 s).');
  }

  // ---- peak RSS while 16 clients stream big.bin (hot) ----
  if (wants('rss-16-streams')) {
    const rss = row(newRow('rss-16-streams', `peak RSS, ${s.streams} clients each GET ${big} (hot), dir upstream`, 'MB', 'lower', { max: 100 }));
    const agg: Record<string, number[]> = {};
    for (let i = 0; i < s.runs; i++) {
      for (const [col, srv] of bySrv('dir')) {
        if (rss.errors?.[col]) continue;
        log(`peak RSS, ${s.streams} streams: ${col} run ${i + 1}/${s.runs}`);
        await measureInto(rss, col, 1, async () => {
          const m = await peakRssUnderLoad(srv.pid, srv.url + 'big.bin', s.bigSize, s.streams);
          (agg[col] ??= []).push(m.aggregateMiBps);
          return m.peakMB;
        });
      }
    }
    rss.extra = { aggregateMiBps: agg, note: 'VmRSS summed over the process tree, sampled every 50 ms' };
  }
  rows.sort((a, b) => ORDER.indexOf(a.id) - ORDER.indexOf(b.id));
  return { rows, notes };
}

/** Table order (measurement order differs: S3 runs first so that Ceph can be stopped early). */
const ORDER = [
  'get-4k-hot', 'get-big-hot-dir', 'get-big-hot-webdav', 'get-big-cold-dir', 'get-big-cold-webdav', 'get-big-cold-s3',
  'propfind-cold-dir', 'propfind-hot-dir', 'propfind-cold-webdav', 'propfind-hot-webdav',
  'put-big-durable-dir', 'put-big-durable-webdav', 'rss-16-streams',
];

async function coldS3(s: Settings, r: Row, cluster: CephCluster, source: { path: string; size: number }): Promise<void> {
  const bucket = 'bench';
  const { endpoint, accessKeyId, secretAccessKey, region } = cluster.s3;
  log(`S3: uploading big.bin (${s.bigSize / MiB} MiB) to RGW`);
  const client = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'big.bin', Body: await readFile(source.path) }));
  } finally {
    client.destroy();
  }
  const env = {
    davgate: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: region },
    rclone: {
      RCLONE_CONFIG_S3_TYPE: 's3', RCLONE_CONFIG_S3_PROVIDER: 'Ceph', RCLONE_CONFIG_S3_ENDPOINT: endpoint,
      RCLONE_CONFIG_S3_ACCESS_KEY_ID: accessKeyId, RCLONE_CONFIG_S3_SECRET_ACCESS_KEY: secretAccessKey, RCLONE_CONFIG_S3_REGION: region,
    },
  };
  for (let i = 0; i < s.runs; i++) {
    for (const col of ['davgate', 'rclone'] as const) {
      if (r.errors?.[col]) continue;
      log(`GET ${s.bigSize / MiB} MiB cold over S3: ${col} run ${i + 1}/${s.runs}`);
      let srv: Server | undefined;
      try {
        await dropPageCache(); // RGW's objects from disk for both
        srv = col === 'davgate'
          ? await startDavgate(`s3://${bucket}/`, { env: env.davgate, args: ['--s3-endpoint', endpoint, '--s3-region', region] })
          // rclone 1.60's S3 client fails on any AWS_CA_BUNDLE ("unsupported transport"); the
          // endpoint is plain http on loopback, so no CA bundle is needed
          : await startRclone(`s3:${bucket}`, { env: env.rclone, unsetEnv: ['AWS_CA_BUNDLE'] });
        addRun(r, col, await getSeconds(srv.url + 'big.bin', s.bigSize));
      } catch (e) {
        fail(r, col, errMsg(e));
        log(`  S3 / ${col}: FAILED: ${errMsg(e)}`);
      } finally {
        await srv?.stop();
      }
    }
  }
}
