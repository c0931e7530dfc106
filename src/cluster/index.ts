import type { SharedState } from '../gateway/app.js';
import type { Metrics } from '../metrics.js';
import { RedisBus } from './bus.js';
import { RedisLink, type RedisLinkOptions } from './redis.js';
import { RedisDavState } from './redis-state.js';

// Several gateways, one namespace: the shared state (locks, dead properties) and the
// invalidation bus on one Redis, wired into the gateway by the CLI (serve.ts).

export interface ClusterLog {
  warn(obj: object, msg: string): void;
  info(msg: string): void;
}

export interface Cluster extends SharedState {
  close(): Promise<void>;
}

/** Connects in the background: the gateway starts, and serves reads, while Redis is away. */
export function openCluster(opts: RedisLinkOptions & { ackTimeout?: number }, metrics: Metrics, log: () => ClusterLog | undefined): Cluster {
  metrics.sharedStateUp.set(0);
  const link = new RedisLink(opts, {
    onState: (up, err) => {
      metrics.sharedStateUp.set(up ? 1 : 0);
      if (up) log()?.info('redis connected: locks, properties and writes are served');
      else log()?.warn({ err }, 'redis unreachable: LOCK, UNLOCK, PROPPATCH and writes answer 503 until it is back');
    },
  });
  link.client.on('ready', () => metrics.sharedStateUp.set(1));
  let warned = 0;
  const state = new RedisDavState(link, (err) => {
    // One line a minute at most: every PROPFIND meets it while Redis is away.
    if (Date.now() - warned < 60_000) return;
    warned = Date.now();
    log()?.warn({ err }, 'PROPFIND answered without dead properties and locks: redis unreachable');
  });
  const bus = new RedisBus(link, metrics, opts.ackTimeout);
  link.start();
  return {
    state, bus,
    notReady: () => link.notReady(),
    close: () => link.close(),
  };
}
