// A minimal HTTP client for the measurements: one fresh connection per request, the body is
// counted and discarded, and the status is checked so an error page is never timed as a success.
import { createReadStream } from 'node:fs';
import { request, Agent } from 'node:http';

export interface Timed { seconds: number; status: number; bytes: number }

const noKeepAlive = new Agent({ keepAlive: false });

export function send(url: string, method = 'GET', headers: Record<string, string> = {}, bodyFile?: { path: string; size: number }, agent: Agent = noKeepAlive): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const h = { ...headers };
    if (bodyFile) h['content-length'] = String(bodyFile.size);
    const req = request(url, { method, headers: h, agent }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => { bytes += c.length; });
      res.on('end', () => resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (bodyFile) createReadStream(bodyFile.path).on('error', reject).pipe(req);
    else req.end();
  });
}

/** send(), but a status outside `ok` (or a short GET body) is an error. */
export async function expect(url: string, method: string, ok: number[], headers: Record<string, string> = {}, opts: { bodyFile?: { path: string; size: number }; bytes?: number } = {}): Promise<Timed> {
  const r = await send(url, method, headers, opts.bodyFile);
  if (!ok.includes(r.status)) throw new Error(`${method} ${url}: HTTP ${r.status}`);
  if (opts.bytes !== undefined && r.bytes !== opts.bytes) throw new Error(`${method} ${url}: ${r.bytes} bytes, expected ${opts.bytes}`);
  return r;
}

export const propfindSeconds = async (url: string): Promise<number> => (await expect(url, 'PROPFIND', [207], { depth: '1' })).seconds;

/** Number of <href> elements of a PROPFIND depth-1 answer (checks a listing is complete). */
export function propfindEntries(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PROPFIND', headers: { depth: '1' }, agent: noKeepAlive }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        if (res.statusCode !== 207) return reject(new Error(`PROPFIND ${url}: HTTP ${res.statusCode}`));
        resolve(Buffer.concat(parts).toString('utf8').match(/<(?:[A-Za-z][\w.-]*:)?href[\s>]/g)?.length ?? 0);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
