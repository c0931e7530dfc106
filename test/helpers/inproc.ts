import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config.js';
import { FsUpstream } from '../../src/upstream/fs.js';
import { buildGateway, type Gateway } from '../../src/gateway/app.js';
import { CountingUpstream } from './counting-upstream.js';
import type { Upstream } from '../../src/upstream/types.js';

export interface TestGateway {
  url: string;
  adminUrl: string;
  upstreamDir: string;
  cacheDir: string;
  upstream: CountingUpstream;
  gateway: Gateway;
  config: Config;
  close(): Promise<void>;
}

/**
 * A real gateway in this process on random loopback ports, over a real directory, with the
 * upstream wrapped so tests can count what reaches it.
 */
export async function startGateway(
  overrides: Record<string, unknown> = {},
  dirs: { upstreamDir?: string; cacheDir?: string; upstream?: Upstream } = {},
): Promise<TestGateway> {
  const upstreamDir = dirs.upstreamDir ?? await mkdtemp(join(tmpdir(), 'davgate-up-'));
  const cacheDir = dirs.cacheDir ?? await mkdtemp(join(tmpdir(), 'davgate-cache-'));
  const base = { upstream: { type: 'fs', root: upstreamDir }, cache: { dir: cacheDir }, listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, logLevel: 'silent' };
  const merged = deepMerge(base, overrides);
  if (overrides.upstream) merged.upstream = overrides.upstream; // another backend's keys replace the fs ones
  const config = loadConfig({ overrides: merged });
  // Another backend (S3, WebDAV) may be handed in; the count is taken in front of it all the same.
  const upstream = new CountingUpstream(dirs.upstream ?? await FsUpstream.open(upstreamDir));
  const gateway = await buildGateway(config, upstream);
  const url = (await gateway.app.listen({ host: '127.0.0.1', port: 0 })) + '/';
  const adminUrl = (await gateway.admin.listen({ host: '127.0.0.1', port: 0 })) + '/';
  return {
    url, adminUrl, upstreamDir, cacheDir, upstream, gateway, config,
    async close() {
      await gateway.close();
      if (!dirs.upstreamDir) await rm(upstreamDir, { recursive: true, force: true });
      if (!dirs.cacheDir) await rm(cacheDir, { recursive: true, force: true });
    },
  };
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}
