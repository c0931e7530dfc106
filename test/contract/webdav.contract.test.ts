import { after } from 'node:test';
import { randomBytes } from 'node:crypto';
import { WebDavUpstream } from '../../src/upstream/webdav/upstream.js';
import { startApacheDav, startNginxDav, type DavServer } from '../helpers/dav-servers.js';
import { upstreamContract, type ContractSubject } from './upstream-contract.js';

// The Upstream contract over real WebDAV servers (Debian's nginx with dav-ext, Apache mod_dav).
// One server each for the whole file; every case gets a fresh, empty collection on it.

const IMPLEMENTS = { quota: false, setMtime: false } as const;

function servedBy(start: () => Promise<DavServer>): () => Promise<ContractSubject> {
  let server: Promise<DavServer> | undefined;
  after(async () => { if (server) await (await server).stop(); });
  return async () => {
    server ??= start();
    const s = await server;
    const dir = `case-${randomBytes(6).toString('hex')}`;
    await s.seed(dir, null);
    const upstream = new WebDavUpstream({ url: `${s.url}${dir}/` });
    return { upstream, implements: IMPLEMENTS, cleanup: () => upstream.close() };
  };
}

upstreamContract('WebDavUpstream over nginx (dav-ext)', servedBy(() => startNginxDav()));
upstreamContract('WebDavUpstream over Apache mod_dav', servedBy(() => startApacheDav()));
