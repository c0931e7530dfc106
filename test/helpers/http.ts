// Raw HTTP for the e2e tests: requests through node:http with the path sent exactly as given (no URL
// normalisation, so traversal and odd spellings reach the server), plus small WebDAV body builders.
import * as http from 'node:http';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** `body` decoded as UTF-8. */
  text: string;
}

/** A request body; an array is written piece by piece (with "transfer-encoding: chunked", one chunk each). */
export type RawBody = string | Buffer | Array<string | Buffer>;

/**
 * One request with the path sent byte for byte as given. A body given as an array is written
 * piece by piece; with a "transfer-encoding: chunked" header each piece is one chunk. Rejects when
 * no answer arrives within `timeoutMs`.
 */
export function raw(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string | number> = {},
  body?: RawBody,
  timeoutMs = 15_000,
): Promise<RawResponse> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: Number(u.port), method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, text: buf.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    if (Array.isArray(body)) {
      for (const piece of body) req.write(piece);
      req.end();
    } else {
      req.end(body);
    }
  });
}

/** A PROPFIND body asking for `props` (elements in the DAV: namespace as D:, more prefixes declared by `decls`). */
export function propfindBody(props: string, decls = ''): string {
  return `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"${decls}><D:prop>${props}</D:prop></D:propfind>`;
}

/** A PROPPATCH body around `inner` (D:set / D:remove elements). */
export function propertyupdate(inner: string, decls = ''): string {
  return `<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"${decls}>${inner}</D:propertyupdate>`;
}
