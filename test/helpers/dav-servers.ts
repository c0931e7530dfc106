// Real WebDAV servers for the WebDAV upstream's e2e tests: nginx with the dav-ext module,
// Apache mod_dav and the webdav-server package (a Node server people put gateways in front of),
// each on a random free loopback port, serving a fresh temp directory.
// Debian packages (scripts/test-deps.sh): nginx libnginx-mod-http-dav-ext apache2 apache2-utils.
// Nothing is registered globally: callers call stop() themselves (usually in `after`).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { reapOnExit } from './reaper.js';

const execFileP = promisify(execFile);

export const NGINX_DAV_EXT_MODULE = '/usr/lib/nginx/modules/ngx_http_dav_ext_module.so';
export const APACHE_MODULES = '/usr/lib/apache2/modules';

const START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;

export interface DavServer {
  /** Base URL of the WebDAV namespace, ends with '/'. */
  url: string;
  /** The directory served at `url`. */
  root: string;
  pid: number;
  /** Which server this is. */
  kind: DavServerKind;
  /** The server's error log so far (for failure messages). */
  errorLog(): Promise<string>;
  /**
   * Create a file (string/Buffer) or a directory (null) directly on disk, below `root`, owned by
   * the user the server runs as (Apache's children are www-data when the tests run as root).
   */
  seed(relPath: string, content: string | Buffer | null): Promise<void>;
  /** Stop the server (SIGTERM, SIGKILL after 5 s) and remove its temp directory. */
  stop(): Promise<void>;
}

export type DavServerKind = 'nginx' | 'apache' | 'webdav-server';

export interface DavServerOptions {
  /**
   * Serve the namespace below this URL path instead of "/" (e.g. "/dav/"), to exercise base
   * URLs with a path prefix. The directory is created inside the server's document root.
   */
  basePath?: string;
}

export interface ApacheDavOptions extends DavServerOptions {
  /** Basic-auth users (name → password); when given, every request needs one of them. */
  users?: Record<string, string>;
  /** Only this user may access "<base>/private" (the directory is created). Needs `users`. */
  privateFor?: string;
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** True when the binaries and modules needed by startNginxDav are installed. */
export function haveNginxDav(): boolean {
  return existsSync(NGINX_DAV_EXT_MODULE) && (existsSync('/usr/sbin/nginx') || existsSync('/usr/bin/nginx'));
}

/** True when the binaries and modules needed by startApacheDav are installed. */
export function haveApacheDav(): boolean {
  return existsSync('/usr/sbin/apache2') && existsSync(join(APACHE_MODULES, 'mod_dav_fs.so')) && existsSync('/usr/bin/htpasswd');
}

async function wwwData(): Promise<{ uid: number; gid: number }> {
  const { stdout: u } = await execFileP('id', ['-u', 'www-data']);
  const { stdout: g } = await execFileP('id', ['-g', 'www-data']);
  return { uid: Number(u.trim()), gid: Number(g.trim()) };
}

/** A port that was free a moment ago (the server may still lose a race for it: callers retry). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True when something accepts connections on loopback `port`. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess): Promise<void> {
  if (exited(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  const done = waitExit(child);
  child.kill('SIGTERM');
  const timedOut = await Promise.race([done.then(() => false), sleep(STOP_GRACE_MS).then(() => true)]);
  if (timedOut) {
    child.kill('SIGKILL');
    await done;
  }
}

/** Start `cmd`, wait until `port` accepts connections; false when it exited first (port lost). */
async function launch(cmd: string, args: string[], port: number, env?: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; output: () => string } | null> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  child.once('exit', reapOnExit(child.pid));
  let out = '';
  const keep = (b: Buffer) => { out = (out + b.toString()).slice(-20_000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.once('error', (e) => { out += `\nspawn error: ${e.message}`; });
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited(child)) return null;
    if (await canConnect(port)) return { child, output: () => out };
    await sleep(50);
  }
  await stopChild(child);
  throw new Error(`${cmd} did not start listening on ${port} within ${START_TIMEOUT_MS} ms:\n${out}`);
}

function normaliseBase(basePath: string | undefined): string {
  const segs = (basePath ?? '/').split('/').filter(Boolean);
  return segs.length ? '/' + segs.join('/') + '/' : '/';
}

async function startWith(
  kind: DavServerKind,
  basePath: string | undefined,
  owner: { uid: number; gid: number } | null,
  setup: (dir: string, docRoot: string) => Promise<void>,
  configure: (dir: string, docRoot: string, port: number) => Promise<{ cmd: string; args: string[]; env?: NodeJS.ProcessEnv }>,
): Promise<DavServer> {
  const dir = await mkdtemp(join(tmpdir(), `davgate-${kind}-`));
  try {
    const docRoot = join(dir, 'root');
    const base = normaliseBase(basePath);
    const root = join(docRoot, ...base.split('/').filter(Boolean));
    await mkdir(root, { recursive: true });
    await setup(dir, docRoot);
    let lastOutput = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const { cmd, args, env } = await configure(dir, docRoot, port);
      const started = await launch(cmd, args, port, env);
      if (!started) {
        lastOutput = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
        continue; // most likely the port was taken in between: try another
      }
      const { child } = started;
      let stopped = false;
      return {
        url: `http://127.0.0.1:${port}${base}`,
        root,
        pid: child.pid ?? -1,
        kind,
        seed: async (relPath, content) => {
          const target = join(root, ...relPath.split('/').filter(Boolean));
          if (content === null) await mkdir(target, { recursive: true });
          else await writeFile(target, content);
          if (owner) await chown(target, owner.uid, owner.gid);
        },
        errorLog: async () => `${started.output()}\n${await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')}`,
        stop: async () => {
          if (stopped) return;
          stopped = true;
          await stopChild(child);
          await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        },
      };
    }
    throw new Error(`${kind} failed to start:\n${lastOutput}`);
  } catch (e) {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

/** nginx + dav-ext, serving a temp directory (as the current user; `user root` when root). */
export async function startNginxDav(opts: DavServerOptions = {}): Promise<DavServer> {
  const nginx = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
  return startWith('nginx', opts.basePath, null, async (dir) => {
    for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) await mkdir(join(dir, d));
  }, async (dir, docRoot, port) => {
    const conf = join(dir, 'nginx.conf');
    await writeFile(conf, `
${isRoot() ? 'user root;' : ''}
worker_processes 1;
load_module ${NGINX_DAV_EXT_MODULE};
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 75s;
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
    root ${docRoot};
    location / {
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      dav_access user:rw group:r all:r;
      create_full_put_path off;
      client_max_body_size 0;
      min_delete_depth 0;
      autoindex off;
    }
  }
}
`);
    return {
      cmd: nginx,
      args: ['-c', conf, '-p', dir + '/', '-g', `daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;`],
    };
  });
}

/** The webdav-server package (v2, PhysicalFileSystem) in a child process of its own. */
export async function startWebdavServer(): Promise<DavServer> {
  const child = join(dirname(fileURLToPath(import.meta.url)), 'webdav-server-child.js');
  return startWith('webdav-server', undefined, null, async () => undefined, async (_dir, docRoot, port) => ({
    cmd: process.execPath,
    args: [child, docRoot, String(port)],
  }));
}

/** Apache mod_dav (mod_dav_fs), optionally with Basic auth and a private location. */
export async function startApacheDav(opts: ApacheDavOptions = {}): Promise<DavServer> {
  const users = opts.users ?? {};
  const auth = Object.keys(users).length > 0;
  if (opts.privateFor !== undefined && !auth) throw new Error('privateFor needs users');
  const base = normaliseBase(opts.basePath);
  const owner = isRoot() ? await wwwData() : null;
  return startWith('apache', opts.basePath, owner, async (dir, docRoot) => {
    await mkdir(join(dir, 'lock'));
    await mkdir(join(dir, 'run'));
    if (opts.privateFor !== undefined) await mkdir(join(docRoot, ...base.split('/').filter(Boolean), 'private'));
    if (auth) {
      const file = join(dir, 'htpasswd');
      let first = true;
      for (const [user, pass] of Object.entries(users)) {
        // -i: password from stdin, never on a command line
        await new Promise<void>((resolve, reject) => {
          const p = execFile('htpasswd', [...(first ? ['-c'] : []), '-i', file, user], (err: Error | null) => (err ? reject(err) : resolve()));
          p.stdin?.end(pass);
        });
        first = false;
      }
    }
    if (owner) {
      // Apache refuses to serve as root: its children run as www-data, which must own the tree.
      await chmod(dir, 0o755);
      await execFileP('chown', ['-R', `${owner.uid}:${owner.gid}`, docRoot, join(dir, 'lock'), join(dir, 'run')]);
      if (auth) await chown(join(dir, 'htpasswd'), owner.uid, owner.gid);
    }
  }, async (dir, docRoot, port) => {
    const conf = join(dir, 'httpd.conf');
    const mod = (name: string, file: string) => `<IfModule !${name}>\n  LoadModule ${name} ${APACHE_MODULES}/${file}\n</IfModule>`;
    const privatePath = base + 'private';
    const authBlock = auth ? `
  AuthType Basic
  AuthName "davgate test"
  AuthBasicProvider file
  AuthUserFile ${dir}/htpasswd
  Require valid-user` : `
  Require all granted`;
    await writeFile(conf, `
ServerRoot "${dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
PidFile ${dir}/run/httpd.pid
DefaultRuntimeDir ${dir}/run
ErrorLog ${dir}/error.log
LogLevel warn
${mod('mpm_event_module', 'mod_mpm_event.so')}
${mod('unixd_module', 'mod_unixd.so')}
${mod('authz_core_module', 'mod_authz_core.so')}
${mod('authn_core_module', 'mod_authn_core.so')}
${mod('authn_file_module', 'mod_authn_file.so')}
${mod('auth_basic_module', 'mod_auth_basic.so')}
${mod('authz_user_module', 'mod_authz_user.so')}
${mod('dav_module', 'mod_dav.so')}
${mod('dav_fs_module', 'mod_dav_fs.so')}
${isRoot() ? 'User www-data\nGroup www-data' : ''}
StartServers 1
ServerLimit 2
ThreadsPerChild 32
MaxRequestWorkers 64
MinSpareThreads 8
MaxSpareThreads 64
KeepAlive On
KeepAliveTimeout 5
DocumentRoot "${docRoot}"
DavLockDB ${dir}/lock/DavLock
<Directory />
  AllowOverride None
  Require all denied
</Directory>
<Directory "${docRoot}">
  Options None
  AllowOverride None
  Dav On${authBlock}
</Directory>
${opts.privateFor !== undefined ? `<LocationMatch "^${privatePath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(/|$)">
  Require user ${opts.privateFor}
  # an authenticated user who is not allowed gets 403, not a new 401 challenge
  AuthzSendForbiddenOnFailure On
</LocationMatch>` : ''}
`);
    const apache2 = existsSync('/usr/sbin/apache2') ? '/usr/sbin/apache2' : 'apache2';
    // Debian's apache2 reads APACHE_* variables only from its own config; ours uses absolute paths.
    const env = { ...process.env, APACHE_RUN_DIR: `${dir}/run`, APACHE_LOCK_DIR: `${dir}/lock`, APACHE_LOG_DIR: dir, APACHE_PID_FILE: `${dir}/run/httpd.pid`, APACHE_RUN_USER: 'www-data', APACHE_RUN_GROUP: 'www-data' };
    return { cmd: apache2, args: ['-f', conf, '-DFOREGROUND'], env };
  });
}
