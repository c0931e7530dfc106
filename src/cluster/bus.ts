import { randomUUID } from 'node:crypto';
import type { BusHandlers, InvalidationBus } from '../cachemgr/bus.js';
import type { Metrics } from '../metrics.js';
import type { RedisLink } from './redis.js';

// The invalidation bus on Redis pub/sub: one channel per namespace, one JSON message per
// change. Pub/sub keeps nothing for a subscriber that is away, so after every reconnection of
// the subscribing connection (and after the first: reads were served before it) the receiver
// is told that it may have missed messages.
//
// Delivered is not applied: PUBLISH returns once Redis has queued the message on each
// subscriber's socket, and a reader could still reach a peer before that peer has read it. So
// each receiver acknowledges on the sender's own channel once it has dropped the paths, and
// publish() waits for as many acknowledgements as PUBLISH counted receivers, up to
// `ackTimeout` (a stuck peer delays writes by that much, never forever).

interface Message { from: string; id: number; paths: string[] }

interface Pending { acks: number; expected: number; done: () => void }

export class RedisBus implements InvalidationBus {
  readonly #link: RedisLink;
  readonly #channel: string;
  readonly #metrics: Metrics | undefined;
  readonly #ackTimeout: number;
  /** Our own messages come back to us; they are recognised by this. */
  readonly #id = randomUUID();
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #connectedOnce = false;
  #handlers: BusHandlers | undefined;

  /** Before the link starts: its first connection must be seen. */
  constructor(link: RedisLink, metrics?: Metrics, ackTimeout = 500) {
    this.#link = link;
    this.#channel = link.prefix + 'invalidate';
    this.#metrics = metrics;
    this.#ackTimeout = ackTimeout;
    link.subscriber.on('ready', () => {
      // Also the first connection: reads may have been cached before Redis could be reached.
      if (this.#connectedOnce) this.#metrics?.busMissed.inc();
      this.#connectedOnce = true;
      this.#handlers?.missed();
    });
  }

  get #ackChannel(): string { return `${this.#link.prefix}ack:${this.#id}`; }

  async publish(paths: readonly string[]): Promise<void> {
    const message: Message = { from: this.#id, id: this.#next++, paths: [...paths] };
    let timer: NodeJS.Timeout | undefined;
    const applied = new Promise<boolean>((resolve) => {
      // Registered before PUBLISH: an acknowledgement may beat its reply.
      this.#pending.set(message.id, { acks: 0, expected: Infinity, done: () => resolve(true) });
      timer = setTimeout(() => resolve(false), this.#ackTimeout);
    });
    try {
      const receivers = await this.#link.run((c) => c.publish(this.#channel, JSON.stringify(message)));
      this.#metrics?.busMessages.inc({ direction: 'sent' });
      // Our own subscription is one of the receivers, and acknowledges like the others.
      this.#expect(message.id, receivers);
      if (!(await applied)) this.#metrics?.busAckTimeouts.inc();
    } finally {
      clearTimeout(timer);
      this.#pending.delete(message.id);
    }
  }

  subscribe(handlers: BusHandlers): void {
    this.#handlers = handlers;
    void this.#link.subscriber.subscribe(this.#channel, (raw) => void this.#received(raw, handlers)).catch(() => {});
    void this.#link.subscriber.subscribe(this.#ackChannel, (raw) => this.#acknowledged(Number(raw))).catch(() => {});
  }

  async #received(raw: string, handlers: BusHandlers): Promise<void> {
    let m: Message;
    try {
      m = JSON.parse(raw) as Message;
    } catch {
      return;
    }
    if (typeof m.from !== 'string' || !Array.isArray(m.paths)) return;
    if (m.from === this.#id) return this.#acknowledged(m.id);
    this.#metrics?.busMessages.inc({ direction: 'received' });
    try {
      await handlers.changed(m.paths.filter((p): p is string => typeof p === 'string'));
    } finally {
      // Without Redis there is no one to tell; the sender stops waiting at its timeout.
      await this.#link.run((c) => c.publish(`${this.#link.prefix}ack:${m.from}`, String(m.id))).catch(() => {});
    }
  }

  #acknowledged(id: number): void {
    const p = this.#pending.get(id);
    if (!p) return;
    p.acks++;
    if (p.acks >= p.expected) p.done();
  }

  #expect(id: number, receivers: number): void {
    const p = this.#pending.get(id);
    if (!p) return;
    p.expected = receivers;
    if (p.acks >= p.expected) p.done();
  }
}
