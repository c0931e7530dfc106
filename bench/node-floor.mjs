// The "Node floor" of docs/benchmarks.md: the least any Node server must do for the bench's
// rows, to tell davgate's own cost from Node's. PUT pipes the body into a temp file and renames
// it; GET sends a file with 2 MiB fs.read()s written with back-pressure; GET /4k answers 4 KiB
// from memory with the headers davgate sends. Run it beside davgate, nginx and rclone and time
// them interleaved:  node bench/node-floor.mjs PORT DIR
import http from 'node:http';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';

const [port, root] = [Number(process.argv[2]), process.argv[3]];
const small = Buffer.alloc(4096, 1);
const smallHeaders = { 'content-length': 4096, 'etag': '"0123456789abcdef"', 'last-modified': new Date().toUTCString(), 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };

http.createServer((req, res) => {
  const path = join(root, decodeURIComponent(req.url ?? '/'));
  if (req.method === 'GET' && req.url === '/4k') { res.writeHead(200, smallHeaders); res.end(small); return; }
  (req.method === 'PUT' ? put(req, res, path) : get(res, path)).catch((err) => { res.destroy(err); });
}).listen(port, '127.0.0.1', () => console.log(`node floor on http://127.0.0.1:${port}/ serving ${root}`));

async function put(req, res, path) {
  const tmp = `${path}.tmp${process.pid}`;
  await pipeline(req, fs.createWriteStream(tmp, { highWaterMark: 1 << 20 }));
  await fs.promises.rename(tmp, path);
  res.writeHead(201).end();
}

async function get(res, path) {
  const fh = await fs.promises.open(path, 'r');
  try {
    const { size } = await fh.stat();
    res.writeHead(200, { 'content-length': size });
    const bufs = [Buffer.allocUnsafe(2 << 20), Buffer.allocUnsafe(2 << 20)];
    for (let pos = 0, i = 0; pos < size; i ^= 1) {
      const { bytesRead } = await fh.read(bufs[i], 0, bufs[i].length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      if (!res.write(bytesRead === bufs[i].length ? bufs[i] : bufs[i].subarray(0, bytesRead))) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  } finally {
    await fh.close();
  }
}
