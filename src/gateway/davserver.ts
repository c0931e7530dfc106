import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import webdavServer from 'webdav-server';
import type { CacheManager } from '../cachemgr/cachemgr.js';
import { CacheFileSystem } from './davfs.js';
import type { DavState } from './davstate.js';

const { v2 } = webdavServer;

// LOCK, UNLOCK and PROPPATCH go to webdav-server. It is known to set headers or write after
// a response has ended (some litmus PROPPATCH/LOCK sequences), which throws
// ERR_HTTP_HEADERS_SENT from inside its callbacks, where no try/catch of ours can reach.
// So every response handed to it is guarded: writes after the end become no-ops.

// webdav-server answers LOCK with <D:lockscope><shared/></D:lockscope>: the scope and type
// elements land in no namespace and clients read every lock as exclusive. Put them in DAV:
// (the Content-Length it set is dropped so the fixed body can be sent chunked).
function fixLockXml(body: string): string {
  return body.replace(/<(write|shared|exclusive)\/>/g, '<D:$1/>');
}

function guard(res: ServerResponse, isLock: boolean): ServerResponse {
  const writeHead = res.writeHead.bind(res);
  const setHeader = res.setHeader.bind(res);
  const write = res.write.bind(res) as (...a: unknown[]) => boolean;
  const end = res.end.bind(res) as (...a: unknown[]) => ServerResponse;
  const fix = (args: unknown[]) => (isLock && typeof args[0] === 'string' ? [fixLockXml(args[0]), ...args.slice(1)] : args);
  res.writeHead = ((...args: Parameters<typeof res.writeHead>) => (res.headersSent ? res : writeHead(...args))) as typeof res.writeHead;
  res.setHeader = ((name: string, value: number | string | readonly string[]) => {
    if (res.headersSent) return res;
    const lower = name.toLowerCase();
    // It advertises Digest auth, permissive CORS and its own name on every answer;
    // authentication and headers are ours (gateway/auth.ts, app.ts).
    if (lower === 'www-authenticate' || lower === 'server' || lower.startsWith('access-control-')) return res;
    if (isLock && lower === 'content-length') return res;
    return setHeader(name, value);
  }) as typeof res.setHeader;
  res.write = ((...args: unknown[]) => (res.writableEnded || res.destroyed ? false : write(...fix(args)))) as typeof res.write;
  res.end = ((...args: unknown[]) => (res.writableEnded || res.destroyed ? res : end(...fix(args)))) as typeof res.end;
  return res;
}

/**
 * Runs a request in webdav-server with a body we already read and validated: it parses
 * bodies with throwing code inside callbacks, so it only ever sees well-formed input.
 */
export type DavDelegate = (req: IncomingMessage, res: ServerResponse, body: Buffer) => Promise<void>;

function replay(req: IncomingMessage, body: Buffer): IncomingMessage {
  const headers = { ...req.headers, 'content-length': String(body.length) };
  delete headers['transfer-encoding'];
  return Object.assign(Readable.from(body.length ? [body] : []), { headers, url: req.url, method: req.method }) as unknown as IncomingMessage;
}

export function createDavDelegate(cache: CacheManager, state: DavState, opts: { lockTimeoutSeconds?: number } = {}): DavDelegate {
  const server = new v2.WebDAVServer({
    rootFileSystem: new CacheFileSystem(cache, state),
    requireAuthentification: false,
    lockTimeout: opts.lockTimeoutSeconds ?? 3600,
  });
  return (req, res, body) => new Promise<void>((resolve) => {
    guard(res, req.method === 'LOCK');
    res.once('close', () => resolve());
    // A handler that never answers must not hold the connection forever.
    const timer = setTimeout(() => { if (!res.writableEnded) res.destroy(); }, 60_000);
    res.once('close', () => clearTimeout(timer));
    try {
      server.executeRequest(replay(req, body), res);
    } catch {
      if (!res.headersSent) res.statusCode = 500;
      res.end();
    }
  });
}
