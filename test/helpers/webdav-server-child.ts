// A third-party WebDAV server (the webdav-server package) in a process of its own, serving a
// directory: `node webdav-server-child.js ROOT PORT`. Its own process because webdav-server can
// throw from callbacks, which must not take the test runner down with it.
import { v2 as webdav } from 'webdav-server';

// Without arguments it does nothing: `node --test dist/test/` loads every file below test/.
const [root, port] = process.argv.slice(2);
if (root && port) {
  const server = new webdav.WebDAVServer({ hostname: '127.0.0.1', port: Number(port) });
  server.setFileSystem('/', new webdav.PhysicalFileSystem(root), (ok) => {
    if (!ok) throw new Error('webdav-server: cannot mount ' + root);
    server.start(() => process.stdout.write('listening\n'));
  });
  process.on('SIGTERM', () => server.stop(() => process.exit(0)));
}
