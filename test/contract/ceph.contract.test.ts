import { after } from 'node:test';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3';
import { S3Upstream } from '../../src/upstream/s3.js';
import { FsUpstream } from '../../src/upstream/fs.js';
import { startCeph, type CephCluster } from '../helpers/ceph.js';
import { upstreamContract, type ContractSubject } from './upstream-contract.js';

// The Upstream contract over a real distributed store: a single-node Ceph, through its RADOS
// Gateway (S3Upstream) and through CephFS mounted with ceph-fuse (FsUpstream: the seed's case,
// a cache in front of a distributed file system). One cluster for the file; every case gets a
// fresh key prefix or directory.

let cluster: Promise<CephCluster> | undefined;
let bucketReady: Promise<void> | undefined;
after(async () => { if (cluster) await (await cluster).stop(); });
const ceph = () => (cluster ??= startCeph({ cephfs: true }));

const rgwSubject = (deleteMode: 'batch' | 'single') => async (): Promise<ContractSubject> => {
  const c = await ceph();
  const opts = { endpoint: c.s3.endpoint, region: c.s3.region, bucket: 'contract', forcePathStyle: true, accessKeyId: c.s3.accessKeyId, secretAccessKey: c.s3.secretAccessKey };
  bucketReady ??= (async () => {
    const s3 = new S3Client({ endpoint: opts.endpoint, region: opts.region, forcePathStyle: true, credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } });
    await s3.send(new CreateBucketCommand({ Bucket: opts.bucket }));
    s3.destroy();
  })();
  await bucketReady;
  const upstream = new S3Upstream({ ...opts, prefix: `case-${randomBytes(6).toString('hex')}`, deleteMode });
  return { upstream, implements: { quota: false, setMtime: false }, cleanup: () => upstream.close() };
};

upstreamContract('S3Upstream over Ceph RGW', rgwSubject('batch'));
// What a bucket with notifications on RGW 16.2 needs: collections deleted key by key.
upstreamContract('S3Upstream over Ceph RGW, single-object deletes', rgwSubject('single'));

upstreamContract('FsUpstream over CephFS (ceph-fuse)', async (): Promise<ContractSubject> => {
  const c = await ceph();
  const dir = join(c.cephfsMount!, `case-${randomBytes(6).toString('hex')}`);
  await mkdir(dir);
  return {
    upstream: await FsUpstream.open(dir),
    implements: { quota: true, setMtime: true },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
