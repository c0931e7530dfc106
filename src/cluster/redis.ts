import { createClient, ErrorReply } from 'redis';
import { SharedStateUnavailableError } from '../errors.js';

// The connection to the Redis that gateways of one namespace share: one client for commands,
// one for the invalidation channel (a subscribed connection takes no other command). Neither
// queues commands while disconnected and each command has a deadline, so a request that needs
// Redis fails at once (503) instead of waiting for it; both reconnect by themselves.

export type RedisClient = ReturnType<typeof createClient>;

export interface RedisLinkOptions {
  url: string;
  keyPrefix: string;
  commandTimeout: number;
}

export interface RedisLinkEvents {
  /** The command connection went down (error) or came back (undefined). */
  onState?(up: boolean, err?: unknown): void;
}

/** Back off up to a second between attempts: Redis coming back is noticed within one. */
const reconnect = (retries: number): number => Math.min(50 * 2 ** retries, 1000);

export class RedisLink {
  readonly client: RedisClient;
  readonly subscriber: RedisClient;
  readonly prefix: string;
  #lastError: unknown;

  constructor(opts: RedisLinkOptions, events: RedisLinkEvents = {}) {
    this.prefix = opts.keyPrefix;
    this.client = createClient({
      url: opts.url,
      disableOfflineQueue: true,
      commandOptions: { timeout: opts.commandTimeout },
      socket: { connectTimeout: opts.commandTimeout, reconnectStrategy: reconnect },
    });
    // Subscriptions are kept and renewed by the client across reconnections.
    this.subscriber = createClient({ url: opts.url, socket: { connectTimeout: opts.commandTimeout, reconnectStrategy: reconnect } });
    this.client.on('error', (err: unknown) => {
      const wasUp = this.#lastError === undefined;
      this.#lastError = err;
      if (wasUp) events.onState?.(false, err);
    });
    this.client.on('ready', () => {
      if (this.#lastError !== undefined) events.onState?.(true);
      this.#lastError = undefined;
    });
    this.subscriber.on('error', () => {}); // reported through the command client
  }

  /** Starts connecting; never waits for Redis (the gateway serves reads without it). */
  start(): void {
    this.#lastError ??= new Error('not connected yet');
    void this.client.connect().catch(() => {});
    void this.subscriber.connect().catch(() => {});
  }

  /** Why shared state is unavailable now, or undefined while the command connection is ready. */
  notReady(): string | undefined {
    if (this.client.isReady) return undefined;
    return `redis not connected${this.#lastError instanceof Error ? ` (${this.#lastError.message})` : ''}`;
  }

  /**
   * Run Redis commands; any failure to reach Redis is a SharedStateUnavailableError. An error
   * Redis itself answers (a bad script) is a bug and stays what it is.
   */
  async run<T>(fn: (c: RedisClient) => Promise<T>): Promise<T> {
    if (!this.client.isReady) throw new SharedStateUnavailableError();
    try {
      return await fn(this.client);
    } catch (err) {
      if (err instanceof ErrorReply) throw err;
      throw new SharedStateUnavailableError(undefined, { cause: err });
    }
  }

  async close(): Promise<void> {
    for (const c of [this.subscriber, this.client]) {
      try { c.destroy(); } catch { /* already closed */ }
    }
  }
}
