// `--scale`, idle clients: the server's RSS (summed over its process tree) before and after
// `count` keep-alive connections each made one GET of small.bin and then stay open, idle
// (a mounted drive per desktop, most of them doing nothing).
import { connect, type Socket } from 'node:net';
import { treeRssMB } from './measure.js';
import { sleep } from './util.js';

/** One keep-alive GET on a new connection; resolves once the whole response has arrived. */
function idleClient(host: string, port: number, path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let got = '';
    s.setEncoding('latin1');
    s.once('error', reject);
    s.setTimeout(10_000, () => { s.destroy(); reject(new Error(`GET ${path}: no response in 10 s`)); });
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: keep-alive\r\n\r\n`));
    s.on('data', (d: string) => {
      got += d;
      const head = got.indexOf('\r\n\r\n');
      if (head < 0) return;
      if (!/^HTTP\/1\.1 200/.test(got)) { reject(new Error(`GET ${path}: ${got.split('\r\n')[0]}`)); s.destroy(); return; }
      const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(got.slice(0, head))?.[1] ?? NaN);
      if (got.length - head - 4 >= len) { s.setTimeout(0); s.removeAllListeners('data'); s.removeAllListeners('error'); s.on('error', () => {}); resolve(s); }
    });
  });
}

export interface IdleRow { rssBeforeMB: number; rssIdleMB: number; kibPerConnection: number; stillOpen: number }

export async function idleClientsRss(pid: number, url: string, count: number): Promise<IdleRow> {
  const u = new URL(url);
  const path = u.pathname + 'small.bin';
  const rssBeforeMB = treeRssMB(pid);
  const sockets: Socket[] = [];
  try {
    // 50 at a time: a burst of 1000 SYNs overflows a small accept backlog (the peers differ).
    for (let i = 0; i < count; i += 50) {
      sockets.push(...await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => idleClient(u.hostname, Number(u.port), path))));
    }
    await sleep(2000); // let the server settle (a GC, idle timers)
    const rssIdleMB = treeRssMB(pid);
    const stillOpen = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
    return { rssBeforeMB, rssIdleMB, kibPerConnection: ((rssIdleMB - rssBeforeMB) * 1e6) / 1024 / count, stillOpen };
  } finally {
    for (const s of sockets) s.destroy();
  }
}
