// Several gateways in front of one upstream each cache what they saw of it; a change made
// through one must not be served stale by another for a TTL. The bus carries the paths each
// gateway changed to every other one. A change is published, and applied by the others, before its
// request is answered, so a client that was told "done" finds it done through any gateway.

export interface BusHandlers {
  /** Another gateway changed these paths (each with everything under it); resolves once they are dropped. */
  changed(paths: readonly string[]): Promise<void> | void;
  /** Announcements may have been lost (the bus was disconnected): trust nothing cached. */
  missed(): void;
}

export interface InvalidationBus {
  /**
   * Announce changed paths to the other gateways; resolves once each has dropped them (or a
   * bounded wait for a slow one has passed).
   */
  publish(paths: readonly string[]): Promise<void>;
  /** Handlers for the announcements of the others (one set per bus). */
  subscribe(handlers: BusHandlers): void;
}
