import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../metrics.js';
import { isMethod } from './methods.js';

// What every request leaves behind when it ends: the request metrics and one log line. Shared
// by the onRequest hook (hooks.ts) and the hot reads answered before fastify (hot-read.ts), so
// both count and log alike.

export interface RequestDetails {
  cache?: 'hit' | 'partial' | 'miss';
  user?: string;
}

/**
 * Count `req` in flight now, and account for it when its response closes. `log` is the
 * request's logger; `details` is asked at the end (the handler sets what it found).
 */
export function accountRequest(metrics: Metrics, log: FastifyBaseLogger, req: IncomingMessage, res: ServerResponse, details: () => RequestDetails): void {
  const start = performance.now();
  const method = isMethod(req.method ?? '') ? req.method! : 'OTHER';
  const socket = req.socket;
  const written = socket.bytesWritten;
  metrics.inFlight.inc();
  res.once('close', () => {
    metrics.inFlight.dec();
    const seconds = (performance.now() - start) / 1000;
    const status = res.statusCode;
    const aborted = !res.writableFinished;
    metrics.request(method, status, seconds);
    if (aborted) metrics.clientAborts.inc({ method });
    if (status === 500) metrics.internalErrors.inc();
    // A client going away is its own choice, not a gateway or upstream failure: info.
    if (!infoEnabled(log)) return;
    log.info({
      method: req.method, url: req.url?.slice(0, 2048), status, bytes: socket.bytesWritten - written,
      durationMs: Math.round(seconds * 1e4) / 10, ...details(),
    }, aborted ? 'client abort' : 'request');
  });
}

/** Whether `log` writes info lines (pino's levels; fastify's logger type does not say). */
export function infoEnabled(log: FastifyBaseLogger): boolean {
  return log.level === 'info' || log.level === 'debug' || log.level === 'trace';
}
