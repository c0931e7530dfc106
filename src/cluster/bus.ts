import { randomUUID } from 'node:crypto';
import type { BusHandlers, InvalidationBus } from '../cachemgr/bus.js';
import type { Metrics } from '../metrics.js';
import type { RedisLink } from './redis.js';

// The invalidation bus on Redis pub/sub: one channel per namespace, one JSON message per
// change. Pub/sub keeps nothing for a subscriber that is away, so after every reconnection of
// the subscribing connection (and after the first: reads were served before it) the receiver
// is told that it may have missed messages.

interface Message { from: string; paths: string[] }

export class RedisBus implements InvalidationBus {
  readonly #link: RedisLink;
  readonly #channel: string;
  readonly #metrics: Metrics | undefined;
  /** Our own messages come back to us; they are recognised by this. */
  readonly #id = randomUUID();
  #connectedOnce = false;
  #handlers: BusHandlers | undefined;

  /** Before the link starts: its first connection must be seen. */
  constructor(link: RedisLink, metrics?: Metrics) {
    this.#link = link;
    this.#channel = link.prefix + 'invalidate';
    this.#metrics = metrics;
    link.subscriber.on('ready', () => {
      // Also the first connection: reads may have been cached before Redis could be reached.
      if (this.#connectedOnce) this.#metrics?.busMissed.inc();
      this.#connectedOnce = true;
      this.#handlers?.missed();
    });
  }

  async publish(paths: readonly string[]): Promise<void> {
    const message: Message = { from: this.#id, paths: [...paths] };
    await this.#link.run((c) => c.publish(this.#channel, JSON.stringify(message)));
    this.#metrics?.busMessages.inc({ direction: 'sent' });
  }

  subscribe(handlers: BusHandlers): void {
    this.#handlers = handlers;
    void this.#link.subscriber.subscribe(this.#channel, (raw) => {
      let m: Message;
      try {
        m = JSON.parse(raw) as Message;
      } catch {
        return;
      }
      if (m.from === this.#id || !Array.isArray(m.paths)) return;
      this.#metrics?.busMessages.inc({ direction: 'received' });
      handlers.changed(m.paths.filter((p): p is string => typeof p === 'string'));
    }).catch(() => {});
  }
}
