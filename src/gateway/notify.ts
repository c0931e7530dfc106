import { createHash, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BadRequestError, DavgateError, NotifySecretMismatchError, NotifySecretRequiredError } from '../errors.js';
import { canonicalPath } from '../davpath.js';
import type { Metrics } from '../metrics.js';

// S3 bucket notifications (Ceph RGW's HTTP push endpoint; records shaped like AWS's) turned into
// the DAV paths whose cached state they make stale, on the admin listener at POST /notify/s3.
// A sync topic holds the writer's request until this answers, and a persistent one redelivers
// every non-2xx at once: so the answer is immediate, redeliveries are accepted and dropped by
// event id, and only what is not authentic (or not a notification at all) is refused.

export const NOTIFY_PATH = '/notify/s3';

/** Where a change of the store is announced: paths whose records, listings and subtrees are stale. Must not block. */
export type StoreChange = (paths: string[]) => void;

export interface NotifyOptions {
  secret: string;
  bucket: string;
  /** The upstream's key prefix as configured ("photos", "/photos/", ""). */
  prefix: string;
  /** Event ids remembered to drop redeliveries. */
  dedupeEntries?: number;
}

export interface NotifyOutcome {
  /** Canonical DAV paths to invalidate, each once. */
  paths: string[];
  accepted: number;
  duplicate: number;
  /** Records of another bucket, outside the prefix, or without a usable key. */
  ignored: number;
}

interface S3Record {
  eventId?: unknown;
  opaqueData?: unknown;
  s3?: { bucket?: { name?: unknown }; object?: { key?: unknown } };
}

const digest = (v: string): Buffer => createHash('sha256').update(v).digest();

/** Constant-time: digests of equal length are compared, whatever the lengths presented. */
export function secretMatches(presented: string, secret: string): boolean {
  return timingSafeEqual(digest(presented), digest(secret));
}

/** The records of a notification body; anything else is a BadRequestError. */
export function parseRecords(body: Buffer | string | undefined): S3Record[] {
  if (body === undefined || body.length === 0) throw new BadRequestError('empty notification body');
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString());
  } catch {
    throw new BadRequestError('notification body is not JSON');
  }
  const records = doc !== null && typeof doc === 'object' ? (doc as { Records?: unknown }).Records : undefined;
  if (!Array.isArray(records) || !records.every((r) => r !== null && typeof r === 'object' && !Array.isArray(r))) {
    throw new BadRequestError('notification body has no Records array');
  }
  return records as S3Record[];
}

/**
 * The ways a notified key can be read. RGW 16.2 sends it as stored ("a b+c ü.txt"), AWS
 * form-encoded ("a+b%2Bc+%C3%BC.txt"), others URL-encoded: each reading is invalidated, since a
 * spare one costs one revalidation and a missed one serves stale data for a whole TTL.
 */
export function keyReadings(key: string): string[] {
  const out = new Set([key]);
  for (const k of [key, key.replace(/\+/g, ' ')]) {
    try {
      out.add(decodeURIComponent(k));
    } catch {
      // not percent-encoded after all: the key as sent stands
    }
  }
  return [...out];
}

/** The DAV path of a key under `prefix` (normalised: "" or "p/"), or undefined outside it. */
export function pathOfKey(key: string, prefix: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  try {
    return canonicalPath(key.slice(prefix.length));
  } catch {
    return undefined; // "..", NUL: no DAV path names it
  }
}

export class NotificationReceiver {
  readonly #secret: string;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #seen: LRUCache<string, true>;

  constructor(opts: NotifyOptions) {
    this.#secret = opts.secret;
    this.#bucket = opts.bucket;
    const p = opts.prefix.replace(/^\/+|\/+$/g, '');
    this.#prefix = p ? p + '/' : '';
    this.#seen = new LRUCache({ max: opts.dedupeEntries ?? 10_000 });
  }

  /**
   * Authenticate and read one notification. The secret is `presented` (a bearer header or a
   * token query, set by the sender) or else every record's opaqueData (set on the topic).
   * Throws NotifySecretRequiredError, NotifySecretMismatchError or BadRequestError.
   */
  receive(body: Buffer | string | undefined, presented?: string): NotifyOutcome {
    // Checked before the body is looked at: a forger learns nothing of what it should contain.
    if (presented !== undefined && !secretMatches(presented, this.#secret)) throw new NotifySecretMismatchError();
    const records = parseRecords(body);
    if (presented === undefined) this.#checkOpaque(records);
    const paths = new Set<string>();
    const out: NotifyOutcome = { paths: [], accepted: 0, duplicate: 0, ignored: 0 };
    for (const r of records) {
      const key = r.s3?.object?.key;
      if (r.s3?.bucket?.name !== this.#bucket || typeof key !== 'string') { out.ignored++; continue; }
      // A redelivery repeats both; two objects of one request may share an event id.
      const id = typeof r.eventId === 'string' && r.eventId !== '' ? `${r.eventId}\0${key}` : undefined;
      if (id !== undefined && this.#seen.has(id)) { out.duplicate++; continue; }
      const found = keyReadings(key).map((k) => pathOfKey(k, this.#prefix)).filter((p) => p !== undefined);
      if (found.length === 0) { out.ignored++; continue; }
      if (id !== undefined) this.#seen.set(id, true);
      for (const p of found) paths.add(p);
      out.accepted++;
    }
    out.paths = [...paths];
    return out;
  }

  #checkOpaque(records: S3Record[]): void {
    if (records.length === 0) throw new NotifySecretRequiredError();
    for (const r of records) {
      if (typeof r.opaqueData !== 'string' || r.opaqueData === '') throw new NotifySecretRequiredError();
      if (!secretMatches(r.opaqueData, this.#secret)) throw new NotifySecretMismatchError();
    }
  }
}

/** The secret a sender put in the request itself: `Authorization: Bearer ...` or `?token=...`. */
function presentedSecret(req: FastifyRequest): string | undefined {
  const m = /^bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (m) return m[1];
  const token = (req.query as { token?: unknown }).token;
  return typeof token === 'string' ? token : undefined;
}

function statusOfRejection(err: unknown): number {
  if (err instanceof DavgateError) return err.status;
  const status = (err as { statusCode?: number }).statusCode;
  return status !== undefined && status >= 400 && status < 500 ? status : 500;
}

export interface NotifyRoute {
  receiver: NotificationReceiver;
  maxBodyBytes: number;
  onStoreChange: StoreChange;
}

/** POST /notify/s3, in a scope of its own: the raw body with its own limit, and its own error answers. */
export function addNotifyRoute(app: FastifyInstance, route: NotifyRoute, metrics: Metrics): void {
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: route.maxBodyBytes }, (_req, body, done) => done(null, body));
    scope.setErrorHandler((err, req, reply) => {
      metrics.notifications.inc({ result: 'rejected' });
      const status = statusOfRejection(err);
      if (status >= 500) req.log.error({ err }, 'notification failed');
      else req.log.warn({ status, reason: (err as Error).message }, 'notification refused');
      reply.code(status);
      if (err instanceof DavgateError) reply.headers(err.headers());
      reply.send({ error: (err as Error).message });
    });
    scope.post(NOTIFY_PATH, { bodyLimit: route.maxBodyBytes }, async (req) => {
      const out = route.receiver.receive(req.body as Buffer | undefined, presentedSecret(req));
      metrics.notifications.inc({ result: 'received' }, out.accepted + out.duplicate + out.ignored);
      metrics.notifications.inc({ result: 'accepted' }, out.accepted);
      metrics.notifications.inc({ result: 'duplicate' }, out.duplicate);
      metrics.notifications.inc({ result: 'ignored' }, out.ignored);
      // Not awaited: the sender is answered now, whatever the invalidation has to do.
      if (out.paths.length > 0) route.onStoreChange(out.paths);
      return { accepted: out.accepted, duplicate: out.duplicate, ignored: out.ignored };
    });
  });
}
