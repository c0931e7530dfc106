// config/haproxy/haproxy.cfg (written for compose: service names, Docker's DNS) turned into a
// config for loopback processes, so tests and the bench run the shipped balance and hash lines
// rather than a copy of them.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const HAPROXY_CFG = fileURLToPath(new URL('../../../config/haproxy/haproxy.cfg', import.meta.url)); // from dist/test/helpers/

export interface LocalBackend { url: string; adminUrl: string }

/** The shipped config with its bind, stats bind and server lines pointed at loopback ports. */
export function localHaproxyConfig(port: number, statsPort: number, backends: LocalBackend[], text = readFileSync(HAPROXY_CFG, 'utf8')): string {
  const out: string[] = [];
  let section = '';
  let serversDone = false;
  for (const line of text.split('\n')) {
    const head = /^(\S+)/.exec(line)?.[1];
    if (head) section = head;
    if (section === 'resolvers') continue; // no Docker DNS here: servers are IP addresses
    if (/^\s+bind\s/.test(line)) {
      out.push(section === 'listen' ? `  bind 127.0.0.1:${statsPort}` : `  bind 127.0.0.1:${port}`);
    } else if (/^\s+default-server\s/.test(line)) {
      out.push(line.replace(/\s+resolvers\s+\S+/, '').replace(/\s+init-addr\s+\S+/, '').replace(/\s+inter\s+\S+/, ' inter 500ms'));
    } else if (/^\s+server\s/.test(line)) {
      if (serversDone) continue;
      serversDone = true;
      // Names kept as gw1..gwN, so the hash ring is the one the shipped config builds.
      backends.forEach((b, i) => out.push(`  server gw${i + 1} ${new URL(b.url).host} check port ${new URL(b.adminUrl).port}`));
    } else {
      out.push(line);
    }
  }
  return out.join('\n');
}
