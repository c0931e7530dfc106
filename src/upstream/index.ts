import type { Config } from '../config.js';
import { FsUpstream } from './fs.js';
import { ResilientUpstream, type UpstreamEvents } from './resilient.js';
import type { Upstream } from './types.js';

export type { Upstream } from './types.js';
export { ResilientUpstream } from './resilient.js';

/** The configured backend, wrapped in the outage policy. SDKs load only when used. */
export async function openUpstream(config: Config, events: UpstreamEvents = {}): Promise<ResilientUpstream> {
  const c = config.upstream;
  let inner: Upstream;
  switch (c.type) {
    case 'fs':
      inner = await FsUpstream.open(c.root, { tempMaxAge: c.tempMaxAge });
      break;
    case 's3': {
      const { S3Upstream } = await import('./s3.js');
      const s3 = new S3Upstream(c);
      if (events.onSweepError) s3.sweepStaleUploads(c.abortUploadsAfter, events.onSweepError);
      inner = s3;
      break;
    }
    case 'webdav': {
      const { WebDavUpstream } = await import('./webdav/upstream.js');
      inner = new WebDavUpstream(c);
      break;
    }
  }
  return new ResilientUpstream(inner, config.upstreamPolicy, events);
}
