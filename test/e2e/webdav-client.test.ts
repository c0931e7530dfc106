import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createClient, type FileStat, type WebDAVClient } from 'webdav';
import { startGateway, type TestGateway } from '../helpers/inproc.js';

// End to end with the `webdav` npm client against a real gateway over a real directory.

const MiB = 1024 * 1024;
const BLOCK = 4 * MiB;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

async function hashStream(s: NodeJS.ReadableStream): Promise<{ hash: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of s as AsyncIterable<Buffer>) { h.update(c); bytes += c.length; }
  return { hash: h.digest('hex'), bytes };
}

/** A deterministic pseudo-random stream of `size` bytes, without holding it in memory. */
function bigStream(size: number, seed: Buffer): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (off >= size) { this.push(null); return; }
      const n = Math.min(MiB, size - off);
      const chunk = Buffer.from(seed.subarray(0, n));
      chunk.writeUInt32LE(off / MiB, 0);
      off += n;
      this.push(chunk);
    },
  });
}

describe('webdav client end to end', () => {
  let gw: TestGateway;
  let client: WebDAVClient;

  before(async () => {
    gw = await startGateway({ cache: { blockSize: BLOCK } });
    client = createClient(gw.url);
  });
  after(() => gw.close());

  for (const size of [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + 1]) {
    test(`put/get ${size} bytes, compared by hash, also upstream`, async () => {
      const data = randomBytes(size);
      const name = `/file-${size}.bin`;
      assert.equal(await client.putFileContents(name, data, { contentLength: size }), true);
      const got = (await client.getFileContents(name)) as Buffer;
      assert.equal(got.length, size);
      assert.equal(sha(got), sha(data));
      assert.equal(sha(await readFile(join(gw.upstreamDir, name))), sha(data));
      const st = (await client.stat(name)) as FileStat;
      assert.equal(st.size, size);
      assert.equal(st.type, 'file');
    });
  }

  test('ranged reads across a block boundary', async () => {
    const data = randomBytes(2 * BLOCK + 10);
    await writeFile(join(gw.upstreamDir, 'ranges.bin'), data);
    for (const [a, b] of [[BLOCK - 1, BLOCK], [BLOCK - 5, BLOCK + 5], [0, 0], [2 * BLOCK + 9, 2 * BLOCK + 9], [10, 2 * BLOCK + 5]] as const) {
      const got = (await client.getFileContents('/ranges.bin', { headers: { range: `bytes=${a}-${b}` } })) as Buffer;
      assert.equal(sha(got), sha(data.subarray(a, b + 1)), `range ${a}-${b}`);
    }
  });

  test('list, mkdir, move, copy, delete', async () => {
    await client.createDirectory('/dir');
    await client.createDirectory('/dir/sub');
    await client.putFileContents('/dir/a.txt', 'alpha');
    await client.putFileContents('/dir/sub/b.txt', 'beta');
    const list = (await client.getDirectoryContents('/dir'));
    assert.deepEqual(list.map((e) => `${e.basename}:${e.type}`).sort(), ['a.txt:file', 'sub:directory']);

    await client.moveFile('/dir/a.txt', '/dir/a-moved.txt');
    assert.equal(await client.exists('/dir/a.txt'), false);
    assert.equal(await client.getFileContents('/dir/a-moved.txt', { format: 'text' }), 'alpha');
    await assert.rejects(stat(join(gw.upstreamDir, 'dir/a.txt')));

    await client.copyFile('/dir', '/dir-copy');
    assert.equal(await client.getFileContents('/dir-copy/sub/b.txt', { format: 'text' }), 'beta');
    assert.equal(await client.getFileContents('/dir/sub/b.txt', { format: 'text' }), 'beta');

    await client.moveFile('/dir-copy', '/dir-moved');
    assert.equal(await client.exists('/dir-copy'), false);
    assert.equal(await client.getFileContents('/dir-moved/a-moved.txt', { format: 'text' }), 'alpha');

    // Overwrite through the gateway: read-after-write is immediate, whatever the TTL.
    await client.putFileContents('/dir-moved/a-moved.txt', 'alpha, changed');
    assert.equal(await client.getFileContents('/dir-moved/a-moved.txt', { format: 'text' }), 'alpha, changed');

    await client.deleteFile('/dir-moved');
    await client.deleteFile('/dir/sub/b.txt');
    assert.equal(await client.exists('/dir-moved'), false);
    assert.equal(await client.exists('/dir/sub/b.txt'), false);
    await assert.rejects(stat(join(gw.upstreamDir, 'dir-moved')));
  });

  test('a moved file stays hot: MOVE re-keys its blocks instead of refetching', async () => {
    const data = randomBytes(3 * BLOCK);
    await client.putFileContents('/hot.bin', data);
    assert.equal(sha((await client.getFileContents('/hot.bin')) as Buffer), sha(data));
    gw.upstream.reset();
    assert.equal(sha((await client.getFileContents('/hot.bin')) as Buffer), sha(data));
    assert.equal(gw.upstream.count('read'), 0);
    await client.moveFile('/hot.bin', '/hot-moved.bin');
    gw.upstream.reset();
    assert.equal(sha((await client.getFileContents('/hot-moved.bin')) as Buffer), sha(data));
    assert.equal(gw.upstream.count('read'), 0, 'blocks followed the rename');
  });

  test('300 MiB up and down, streamed, byte-identical', async () => {
    const size = 300 * MiB;
    const seed = randomBytes(MiB);
    const expected = await hashStream(bigStream(size, seed));
    const ok = await client.putFileContents('/huge.bin', bigStream(size, seed), { contentLength: size, overwrite: true });
    assert.equal(ok, true);
    assert.equal((await stat(join(gw.upstreamDir, 'huge.bin'))).size, size);
    assert.deepEqual(await hashStream(createReadStream(join(gw.upstreamDir, 'huge.bin'))), expected);
    const down = await hashStream(client.createReadStream('/huge.bin') as unknown as NodeJS.ReadableStream);
    assert.deepEqual(down, expected);
  });
});
