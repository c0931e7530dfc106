// config/haproxy/haproxy.cfg: cache affinity (a path always goes to the same instance), health
// checks, valid for haproxy itself; and the loopback config the e2e test and the bench derive from
// it keeps those lines, so they measure what is shipped.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HAPROXY, haveHaproxy } from '../helpers/haproxy.js';
import { HAPROXY_CFG, localHaproxyConfig } from '../helpers/haproxy-config.js';

const shipped = readFileSync(HAPROXY_CFG, 'utf8');
const lines = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l)).map((l) => l.trim());
const backends = [8101, 8102, 8103].map((p) => ({ url: `http://127.0.0.1:${p}/`, adminUrl: `http://127.0.0.1:${p + 100}/` }));

function check(text: string): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'davgate-haproxy-cfg-'));
  try {
    writeFileSync(join(dir, 'haproxy.cfg'), text);
    const r = spawnSync(HAPROXY, ['-c', '-f', join(dir, 'haproxy.cfg')], { encoding: 'utf8' });
    return { status: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('config/haproxy/haproxy.cfg', () => {
  test('hashes the path onto a consistent ring, checks /healthz, forwards the client address', () => {
    assert.deepEqual(lines(shipped, /^\s*balance\s/), ['balance uri path-only']);
    assert.deepEqual(lines(shipped, /^\s*hash-type\s/), ['hash-type consistent']);
    assert.deepEqual(lines(shipped, /^\s*option\s+httpchk/), ['option httpchk GET /healthz']);
    assert.deepEqual(lines(shipped, /^\s*mode\s/), ['mode http']);
    assert.equal(lines(shipped, /^\s*option\s+forwardfor/).length, 1);
    const stats = /^listen stats[\s\S]*?^\s*bind\s+(\S+)/m.exec(shipped)?.[1];
    assert.match(stats ?? '', /^127\.0\.0\.1:\d+$/, 'the stats listener is on loopback');
    // Big transfers: no client or server timeout shorter than ten minutes.
    for (const t of lines(shipped, /^\s*timeout\s+(client|server)\s/)) {
      const m = /(\d+)(ms|s|m|h)$/.exec(t)!;
      const s = Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms'];
      assert.ok(s >= 600, `${t} is too short for a big GET`);
    }
  });

  test('the loopback version keeps the balance and check lines and points at the given ports', () => {
    const local = localHaproxyConfig(8100, 8200, backends);
    for (const re of [/^\s*balance\s/, /^\s*hash-type\s/, /^\s*option\s+httpchk/, /^\s*retry-on\s/, /^\s*timeout\s/]) {
      assert.deepEqual(lines(local, re), lines(shipped, re), String(re));
    }
    assert.deepEqual(lines(local, /^\s*server\s/), [
      'server gw1 127.0.0.1:8101 check port 8201', 'server gw2 127.0.0.1:8102 check port 8202', 'server gw3 127.0.0.1:8103 check port 8203',
    ]);
    assert.deepEqual(lines(local, /^\s*bind\s/), ['bind 127.0.0.1:8100', 'bind 127.0.0.1:8200']);
    assert.doesNotMatch(local, /resolvers|127\.0\.0\.11/);
  });

  test('haproxy -c accepts the shipped and the loopback config', { skip: !haveHaproxy() && 'haproxy is not installed' }, () => {
    const a = check(shipped);
    assert.equal(a.status, 0, a.out);
    assert.match(a.out, /Configuration file is valid/);
    const b = check(localHaproxyConfig(8100, 8200, backends));
    assert.equal(b.status, 0, b.out);
    assert.doesNotMatch(b.out, /WARNING/, 'the loopback config resolves every server');
  });
});
