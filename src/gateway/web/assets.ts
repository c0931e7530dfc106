import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { NotFoundError } from '../../errors.js';

// The file manager's own files, served by the gateway under one reserved path (a file of the
// upstream at that path is not reachable through the gateway). Read once at start; nothing is
// ever loaded from another origin, and the page's Content-Security-Policy says so.

export const ASSET_PREFIX = '/.davgate-ui/';

const TYPES: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

interface Asset { body: Buffer; type: string; etag: string }

const ASSETS = new Map<string, Asset>(Object.entries(TYPES).map(([name, type]) => {
  const body = readFileSync(new URL(`./assets/${name}`, import.meta.url));
  return [name, { body, type, etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"` }];
}));

/** Only our own script, style and icon; requests to this origin only; never framed. */
export const PAGE_SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
} as const;

export const isAssetPath = (path: string): boolean => path.startsWith(ASSET_PREFIX);

export function sendAsset(req: FastifyRequest, reply: FastifyReply, path: string): void {
  const asset = ASSETS.get(path.slice(ASSET_PREFIX.length));
  if (!asset) throw new NotFoundError(path);
  reply.headers({ 'content-type': asset.type, 'etag': asset.etag, 'cache-control': 'max-age=300', ...PAGE_SECURITY_HEADERS });
  if (req.headers['if-none-match'] === asset.etag) { reply.code(304).send(); return; }
  reply.code(200).header('content-length', asset.body.length).send(req.method === 'HEAD' ? undefined : asset.body);
}
