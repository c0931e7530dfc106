import { readFileSync } from 'node:fs';
import type { Server } from 'node:https';
import { ConfigError } from '../errors.js';

// TLS on the WebDAV listener: a certificate and key in PEM files, read at start and again on
// reload (SIGHUP, `davgate reload`). A reload swaps the secure context of the listening server:
// connections already open keep theirs, new handshakes get the new certificate.

export interface TlsFiles { cert: string; key: string }

export function readTls(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const read = (what: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`tls.${what}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  return { cert: read('cert', files.cert), key: read('key', files.key) };
}

/** Read the files again and use them for new connections; a bad pair keeps the old one and throws. */
export function reloadTls(server: Server, files: TlsFiles): void {
  const pair = readTls(files);
  try {
    server.setSecureContext(pair);
  } catch (err) {
    throw new ConfigError(`tls: the new certificate and key do not work together: ${(err as Error).message}`);
  }
}
