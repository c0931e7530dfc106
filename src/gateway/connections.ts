import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Metrics } from '../metrics.js';

// Connections per client address, bounded: one client (or one slowloris) cannot hold every
// socket. Beyond the bound a connection gets a 503 at once and is closed.

export function limitConnectionsPerClient(server: Server, max: number, metrics: Metrics): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const addr = socket.remoteAddress ?? '';
    const n = (open.get(addr) ?? 0) + 1;
    if (n > max) {
      metrics.connectionsRefused.inc();
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n');
      socket.destroySoon?.();
      return;
    }
    open.set(addr, n);
    metrics.connections.inc();
    socket.once('close', () => {
      metrics.connections.dec();
      const left = (open.get(addr) ?? 1) - 1;
      if (left <= 0) open.delete(addr);
      else open.set(addr, left);
    });
  });
}
