import type { CallContext } from '../upstream/types.js';

/**
 * Who a cache operation is for (docs/architecture.md, Identity). `key` is part of every node key, so
 * cached data of one identity is never served to another; it is "" when the upstream is
 * shared by all users. `authorization` is passed to backends that act with the caller's own
 * credentials and is never stored.
 */
export interface Identity extends CallContext {
  readonly key: string;
}

export const SHARED: Identity = Object.freeze({ key: '' });
