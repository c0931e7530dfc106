// compose.yaml against what it depends on: the Dockerfile (ports, HEALTHCHECK, admin port), the
// files it bind-mounts, the Prometheus scrape and rule files, the Grafana provisioning, package.json.
// A mismatch here is a stack that starts but never turns healthy, or scrapes nothing.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const REPO = fileURLToPath(new URL('../../../', import.meta.url)); // compiled to dist/test/unit/
const read = (p: string): string => readFileSync(join(REPO, p), 'utf8');

interface Instruction { name: string; args: string }

/** Dockerfile instructions of the final stage (continuations joined, comments dropped). */
function finalStage(text: string): { instructions: Instruction[]; all: Instruction[] } {
  const all: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue; // comments, also inside a continued instruction
    if (pending === '' && raw.trim() === '') continue;
    pending += raw.replace(/\\\s*$/, ' ');
    if (/\\\s*$/.test(raw)) continue;
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(pending);
    if (m) all.push({ name: m[1]!.toUpperCase(), args: m[2]!.trim() });
    pending = '';
  }
  const lastFrom = all.map((i) => i.name).lastIndexOf('FROM');
  return { instructions: all.slice(lastFrom), all };
}

const one = (ins: Instruction[], name: string): string => {
  const found = ins.filter((i) => i.name === name);
  assert.equal(found.length, 1, `expected one ${name} in the final stage, found ${found.length}`);
  return found[0]!.args;
};

/** HEALTHCHECK [--opt=value ...] CMD ["exec", "form"] → options and the compose-style test array. */
function healthcheck(args: string): { options: Record<string, string>; test: string[] } {
  const options: Record<string, string> = {};
  let rest = args;
  for (let m = /^--([\w-]+)=(\S+)\s+/.exec(rest); m; m = /^--([\w-]+)=(\S+)\s+/.exec(rest)) {
    options[m[1]!] = m[2]!;
    rest = rest.slice(m[0].length);
  }
  const cmd = /^CMD\s+(\[[\s\S]*\])$/.exec(rest);
  assert.ok(cmd, `HEALTHCHECK is not CMD in exec (JSON) form: ${args}`);
  return { options, test: ['CMD', ...(JSON.parse(cmd[1]!) as string[])] };
}

/** "127.0.0.1:8080:8080", "8080:8080/tcp", "8080" or { target: 8080 } → the container port. */
function containerPort(p: unknown): number {
  if (typeof p === 'object' && p !== null) return Number((p as { target: unknown }).target);
  const noProto = String(p).replace(/\/(tcp|udp)$/, '');
  return Number(noProto.slice(noProto.lastIndexOf(':') + 1));
}

interface Mount { type: 'bind' | 'volume'; source: string; target: string }
function mounts(service: Service): Mount[] {
  return (service.volumes ?? []).map((v) => {
    if (typeof v === 'object') return { type: v.type === 'bind' ? 'bind' : 'volume', source: v.source, target: v.target };
    const [source, target] = v.split(':') as [string, string];
    return { type: /^[./~]/.test(source) ? 'bind' : 'volume', source, target };
  });
}

/** The host path behind a path inside a service's container, through its bind mounts. */
function hostPath(service: Service, inside: string): string | undefined {
  const m = mounts(service).filter((x) => x.type === 'bind' && (inside === x.target || inside.startsWith(x.target + '/')))
    .sort((a, b) => b.target.length - a.target.length)[0];
  return m && join(REPO, m.source, inside.slice(m.target.length));
}

interface Service {
  image?: string; build?: unknown; command?: string[]; ports?: unknown[]; environment?: Record<string, string>;
  volumes?: Array<string | { type: string; source: string; target: string }>;
  healthcheck?: { test: string[]; interval?: string; timeout?: string; start_period?: string; retries?: number };
  depends_on?: Record<string, { condition?: string }> | string[];
  profiles?: string[];
}

const GATEWAYS = ['gw1', 'gw2', 'gw3'];
const compose = YAML.parse(read('compose.yaml')) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
const services = compose.services;
const dockerfile = finalStage(read('Dockerfile'));
const pkg = JSON.parse(read('package.json')) as { name: string; version: string; license: string; description: string };

/** The admin listener's port, from the image's CMD (--admin-listen host:port). */
function adminPort(): number {
  const cmd = JSON.parse(one(dockerfile.instructions, 'CMD')) as string[];
  const i = cmd.indexOf('--admin-listen');
  assert.ok(i >= 0, `CMD has no --admin-listen: ${JSON.stringify(cmd)}`);
  return Number(cmd[i + 1]!.slice(cmd[i + 1]!.lastIndexOf(':') + 1));
}

describe('compose.yaml', () => {
  test('has the davgate, prometheus and grafana services; davgate is built from this Dockerfile', () => {
    // A plain `docker compose up` starts the services without a profile: exactly these three.
    assert.deepEqual(Object.keys(services).filter((n) => services[n]!.profiles === undefined).sort(), ['davgate', 'grafana', 'prometheus']);
    assert.ok(services.davgate!.build === '.' || (services.davgate!.build as { context?: string })?.context === '.');
  });

  test('every bind-mounted host path exists in the repository', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const m of mounts(s).filter((x) => x.type === 'bind')) {
        assert.ok(existsSync(join(REPO, m.source)), `${name}: ${m.source} (mounted at ${m.target}) does not exist`);
      }
    }
  });

  test('named volumes are declared, and every declared volume is used', () => {
    const declared = Object.keys(compose.volumes ?? {});
    const used = Object.values(services).flatMap((s) => mounts(s).filter((m) => m.type === 'volume').map((m) => m.source));
    for (const v of used) assert.ok(declared.includes(v), `volume ${v} is not declared under volumes:`);
    for (const v of declared) assert.ok(used.includes(v), `volume ${v} is declared but unused`);
    const imageVolumes = JSON.parse(one(dockerfile.instructions, 'VOLUME')) as string[];
    for (const name of ['davgate', ...GATEWAYS]) {
      const targets = mounts(services[name]!).map((m) => m.target).sort();
      assert.deepEqual(targets, [...imageVolumes].sort(), `${name} mounts exactly the image VOLUMEs`);
    }
  });

  test('the davgate ports are the EXPOSEd ones of the Dockerfile', () => {
    const exposed = one(dockerfile.instructions, 'EXPOSE').split(/\s+/).map((p) => Number(p.replace(/\/tcp$/, ''))).sort();
    const published = (services.davgate!.ports ?? []).map(containerPort).sort();
    for (const p of published) assert.ok(exposed.includes(p), `compose publishes ${p}, the Dockerfile EXPOSEs ${exposed.join(' ')}`);
    assert.deepEqual(published, exposed);
    assert.ok(exposed.includes(adminPort()), `the admin port ${adminPort()} is not EXPOSEd`);
  });

  test('the davgate healthcheck is the Dockerfile HEALTHCHECK, command and timing', () => {
    const hc = healthcheck(one(dockerfile.instructions, 'HEALTHCHECK'));
    for (const name of GATEWAYS) assert.deepEqual(services[name]!.healthcheck, services.davgate!.healthcheck, `${name}: healthcheck`);
    const mine = services.davgate!.healthcheck!;
    assert.deepEqual(mine.test, hc.test);
    assert.equal(mine.interval, hc.options.interval);
    assert.equal(mine.timeout, hc.options.timeout);
    assert.equal(mine.start_period, hc.options['start-period']);
    assert.equal(String(mine.retries), hc.options.retries);
    assert.ok(hc.test.join(' ').includes(`:${adminPort()}/healthz`), 'the HEALTHCHECK asks the admin port');
  });

  test('Prometheus scrapes davgate by its service name on the admin port, with rule files that exist', () => {
    const prom = services.prometheus!;
    const configInside = (prom.command ?? []).find((a) => a.startsWith('--config.file='))?.slice('--config.file='.length);
    assert.ok(configInside, 'prometheus command has no --config.file');
    const configHost = hostPath(prom, configInside);
    assert.equal(configHost, join(REPO, 'config/prometheus.yml'));
    const config = YAML.parse(readFileSync(configHost, 'utf8')) as {
      rule_files?: string[]; scrape_configs?: Array<{ metrics_path?: string; static_configs?: Array<{ targets?: string[] }> }>;
    };
    const targets = (config.scrape_configs ?? []).flatMap((s) => (s.static_configs ?? []).flatMap((c) => c.targets ?? []));
    assert.ok(targets.includes(`davgate:${adminPort()}`), `scrape targets ${JSON.stringify(targets)} lack davgate:${adminPort()}`);
    for (const t of targets) {
      const host = t.slice(0, t.lastIndexOf(':'));
      assert.ok(host in services, `scrape target ${t} is not a compose service`);
    }
    const job = (config.scrape_configs ?? []).find((s) => (s.static_configs ?? []).some((c) => c.targets?.includes(`davgate:${adminPort()}`)));
    assert.equal(job?.metrics_path ?? '/metrics', '/metrics');
    assert.ok((config.rule_files ?? []).length > 0, 'no rule_files in config/prometheus.yml');
    for (const rule of config.rule_files ?? []) {
      const inside = posix.resolve(posix.dirname(configInside), rule); // relative to the config file
      const host = hostPath(prom, inside);
      assert.ok(host, `rule file ${rule} (${inside}) is not mounted into the prometheus container`);
      assert.ok(existsSync(rule.includes('*') ? dirname(host) : host), `rule file ${rule} → ${host} does not exist`);
    }
  });

  test('Grafana is provisioned with the prometheus service and the mounted dashboards', () => {
    const graf = services.grafana!;
    const dsDir = hostPath(graf, '/etc/grafana/provisioning/datasources');
    const ds = YAML.parse(readFileSync(join(dsDir!, 'prometheus.yml'), 'utf8')) as { datasources?: Array<{ type?: string; url?: string }> };
    const urls = (ds.datasources ?? []).filter((d) => d.type === 'prometheus').map((d) => d.url);
    assert.deepEqual(urls, ['http://prometheus:9090'], 'the Prometheus datasource URL');
    const dash = YAML.parse(readFileSync(join(hostPath(graf, '/etc/grafana/provisioning/dashboards')!, 'davgate.yml'), 'utf8')) as {
      providers?: Array<{ options?: { path?: string } }>;
    };
    for (const p of dash.providers ?? []) {
      const inside = p.options?.path ?? '';
      assert.ok(hostPath(graf, inside) && existsSync(hostPath(graf, inside)!), `dashboard provider path ${inside} is not a mounted directory`);
    }
    assert.ok((dash.providers ?? []).length > 0, 'no dashboard providers');
    const home = graf.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    if (home) assert.ok(existsSync(hostPath(graf, home) ?? ''), `home dashboard ${home} is not mounted`);
  });

  test('every depends_on waits for service_healthy of a service that has a healthcheck', () => {
    let edges = 0;
    for (const [name, s] of Object.entries(services)) {
      if (s.depends_on === undefined) continue;
      assert.ok(!Array.isArray(s.depends_on), `${name}: depends_on as a list cannot wait for health`);
      for (const [dep, how] of Object.entries(s.depends_on)) {
        edges++;
        assert.equal(how.condition, 'service_healthy', `${name} → ${dep}`);
        assert.ok(services[dep]?.healthcheck?.test?.length, `${name} depends on ${dep}, which has no healthcheck`);
      }
    }
    assert.ok(edges >= 2, 'prometheus waits for davgate, grafana for prometheus');
  });

  test('images have pinned tags', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.build !== undefined) continue;
      assert.match(s.image ?? '', /^[^:@]+(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$/, `${name}: image ${s.image} has no tag`);
      assert.doesNotMatch(s.image!, /:latest$/, `${name}: image ${s.image} is not pinned`);
    }
  });
});

describe('compose.yaml, profile cluster', () => {
  const CLUSTER = ['haproxy', 'redis', ...GATEWAYS];

  test('redis, gw1..gw3 and haproxy exist and are only in the cluster profile', () => {
    assert.deepEqual(Object.keys(services).filter((n) => services[n]!.profiles !== undefined).sort(), [...CLUSTER].sort());
    for (const n of CLUSTER) assert.deepEqual(services[n]!.profiles, ['cluster'], `${n}: profiles`);
    for (const n of GATEWAYS) {
      assert.ok(services[n]!.build === '.', `${n} is built from this Dockerfile`);
      assert.equal(services[n]!.image, services.davgate!.image, `${n}: the same image as davgate`);
    }
  });

  test('every published port of every service is on loopback only', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const p of s.ports ?? []) {
        const host = typeof p === 'object' && p !== null ? (p as { host_ip?: string }).host_ip
          : typeof p === 'string' && p.split(':').length === 3 ? p.split(':')[0] : undefined;
        assert.equal(host, '127.0.0.1', `${name}: port ${JSON.stringify(p)} is not bound to loopback`);
      }
    }
    assert.equal((services.haproxy!.ports ?? []).length, 1, 'haproxy publishes its WebDAV port');
    for (const n of [...GATEWAYS, 'redis']) assert.equal(services[n]!.ports, undefined, `${n} is reached through the compose network only`);
  });

  test('every gateway has its own cache volume, the same data volume and the same Redis URL', () => {
    const at = (n: string, target: string) => mounts(services[n]!).find((m) => m.target === target);
    const caches = GATEWAYS.map((n) => at(n, '/cache'));
    for (const [i, c] of caches.entries()) assert.equal(c?.type, 'volume', `${GATEWAYS[i]}: /cache is a named volume`);
    assert.equal(new Set(caches.map((c) => c?.source)).size, GATEWAYS.length, `cache volumes ${caches.map((c) => c?.source).join(' ')} are not distinct`);
    assert.ok(!caches.some((c) => c?.source === at('davgate', '/cache')?.source), 'no gateway shares the single davgate\'s cache');
    const data = new Set(GATEWAYS.map((n) => at(n, '/data')?.source));
    assert.equal(data.size, 1, 'one shared data volume');
    const urls = GATEWAYS.map((n) => services[n]!.environment?.DAVGATE_REDIS_URL);
    assert.equal(new Set(urls).size, 1, `REDIS URLs differ: ${urls.join(' ')}`);
    const url = new URL(urls[0]!);
    assert.equal(url.protocol, 'redis:');
    assert.ok(url.hostname in services, `Redis host ${url.hostname} is not a compose service`);
    for (const n of GATEWAYS) {
      const deps = services[n]!.depends_on as Record<string, { condition?: string }> | undefined;
      assert.equal(deps?.[url.hostname]?.condition, 'service_healthy', `${n} waits for Redis`);
    }
  });

  test('haproxy mounts config/haproxy/haproxy.cfg, which names gw1..gw3 with their admin health check', () => {
    const hp = services.haproxy!;
    const file = hostPath(hp, '/usr/local/etc/haproxy/haproxy.cfg');
    assert.equal(file, join(REPO, 'config/haproxy/haproxy.cfg'));
    assert.ok(existsSync(file), `${file} does not exist`);
    const cfg = readFileSync(file, 'utf8');
    const servers = [...cfg.matchAll(/^\s*server\s+(\S+)\s+(\S+)/gm)].map((m) => [m[1], m[2]]);
    assert.deepEqual(servers, GATEWAYS.map((g) => [g, `${g}:${containerPort(services.davgate!.ports![0])}`]));
    assert.match(cfg, new RegExp(`^\\s*default-server\\s+check\\s+port\\s+${adminPort()}\\b`, 'm'), 'health checks on the admin port');
    assert.match(cfg, /^\s*option\s+httpchk\s+GET\s+\/healthz\s*$/m);
    const bind = /^frontend[\s\S]*?^\s*bind\s+\S*:(\d+)/m.exec(cfg)?.[1];
    assert.deepEqual((hp.ports ?? []).map(containerPort), [Number(bind)], 'haproxy publishes its frontend port');
  });
});

describe('Dockerfile', () => {
  test('the version label defaults to package.json version; title, licenses and description match', () => {
    const args: Record<string, string | undefined> = Object.fromEntries(dockerfile.instructions.filter((i) => i.name === 'ARG')
      .map((i) => /^(\w+)(?:=(.*))?$/.exec(i.args)!).map((m): [string, string] => [m[1] ?? '', m[2] ?? '']));
    assert.equal(args.VERSION, pkg.version, 'ARG VERSION default');
    const labels = dockerfile.instructions.filter((i) => i.name === 'LABEL').map((i) => i.args).join(' ');
    const label = (k: string) => new RegExp(`org\\.opencontainers\\.image\\.${k}="([^"]*)"`).exec(labels)?.[1];
    assert.equal(label('version'), '${VERSION}');
    assert.equal(label('title'), pkg.name);
    assert.equal(label('licenses'), pkg.license);
    assert.equal(label('description'), pkg.description);
  });

  test('.dockerignore keeps tests, docs, git and build output out, and lets every COPY source in', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim().replace(/\/$/, '')).filter((l) => l && !l.startsWith('#'));
    for (const p of ['.git', 'node_modules', 'dist', 'test', 'bench', 'docs']) assert.ok(ignored.includes(p), `${p} is not in .dockerignore`);
    const sources = dockerfile.all.filter((i) => i.name === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1));
    assert.ok(sources.length > 0);
    // .dockerignore patterns are globs; a match of the path or of a parent directory excludes it.
    const glob = (p: string) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '\0').replace(/\*/g, '[^/]*').replace(/\0/g, '.*')}(/.*)?$`);
    for (const s of sources) {
      assert.ok(!ignored.some((p) => !p.startsWith('!') && glob(p).test(s)), `COPY ${s} is excluded by .dockerignore`);
      assert.ok(existsSync(join(REPO, s)), `COPY ${s}: no such file`);
    }
  });
});
