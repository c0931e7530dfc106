import { DavgateError, NotFoundError } from '../errors.js';
import type { Metrics } from '../metrics.js';

/** How an upstream call ended, for metrics: a client that went away is not an upstream failure. */
export function upstreamResultOf(err: unknown): string {
  if (err instanceof NotFoundError) return 'not_found';
  if (err instanceof DavgateError && err.code === 'DAVGATE_INCOMPLETE_BODY') return 'client_abort';
  return 'error';
}

/** Run one upstream call, counted and timed by operation and result. */
export function metered<T>(metrics: Metrics | undefined, operation: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  return fn().then(
    (v) => { metrics?.upstreamCall(operation, 'ok', (performance.now() - start) / 1000); return v; },
    (err) => { metrics?.upstreamCall(operation, upstreamResultOf(err), (performance.now() - start) / 1000); throw err; },
  );
}
