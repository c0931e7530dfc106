import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsUpstream } from '../../src/upstream/fs.js';
import { ResilientUpstream } from '../../src/upstream/resilient.js';
import { upstreamContract, type ContractSubject } from './upstream-contract.js';

// The Upstream contract over a local directory, bare and behind the outage policy.

const FS_IMPLEMENTS = { quota: true, setMtime: true } as const;

async function fsSubject(): Promise<{ fsUpstream: FsUpstream; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'davgate-contract-fs-'));
  return { fsUpstream: await FsUpstream.open(root), cleanup: () => rm(root, { recursive: true, force: true }) };
}

upstreamContract('FsUpstream', async (): Promise<ContractSubject> => {
  const { fsUpstream, cleanup } = await fsSubject();
  return { upstream: fsUpstream, cleanup, implements: FS_IMPLEMENTS };
});

upstreamContract('ResilientUpstream(FsUpstream)', async (): Promise<ContractSubject> => {
  const { fsUpstream, cleanup } = await fsSubject();
  const upstream = new ResilientUpstream(fsUpstream, { timeout: 5000, retries: 2, failureThreshold: 3, downFor: 1000 });
  return { upstream, cleanup: async () => { await upstream.close(); await cleanup(); }, implements: FS_IMPLEMENTS };
});
