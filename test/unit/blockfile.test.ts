import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from '@node-rs/crc32';
import { BLOCK_NAME, BlockReader, CHUNK, blockFileName, checksumTable, readChecksumTable, writeBlockFile } from '../../src/cachemgr/blockfile.js';
import { LockFile } from '../../src/cachemgr/lockfile.js';
import { CacheInUseError } from '../../src/errors.js';

async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'davgate-bf-'));
  try { await fn(dir); } finally { await rm(dir, { recursive: true, force: true }); }
}

test('block file: data then a checksum per chunk; the name parses back', async () => {
  await inTemp(async (dir) => {
    const data = randomBytes(2 * CHUNK + 10);
    const table = checksumTable(data);
    assert.equal(table.length, 3 * 4);
    const name = blockFileName('abc123', 0x2f, crc32(table));
    const m = BLOCK_NAME.exec(name);
    assert.ok(m);
    assert.equal(parseInt(m[2]!, 16), 0x2f);
    assert.equal(parseInt(m[3]!, 16), crc32(table));
    await writeBlockFile(join(dir, name), data, table);
    await assert.rejects(writeBlockFile(join(dir, name), data, table), 'never overwrites');
    const file = await readFile(join(dir, name));
    assert.ok(file.subarray(0, data.length).equals(data));
    assert.ok(file.subarray(data.length).equals(table));
  });
});

test('block reader: verified chunks into a caller buffer; a damaged chunk reports corruption', async () => {
  await inTemp(async (dir) => {
    const data = randomBytes(3 * CHUNK);
    const table = checksumTable(data);
    const path = join(dir, 'b');
    await writeBlockFile(path, data, table);
    const fh = await open(path, 'r+');
    assert.equal(await readChecksumTable(fh, data.length + 1, crc32(table)), undefined, 'wrong size');
    assert.equal(await readChecksumTable(fh, data.length, crc32(table) ^ 1), undefined, 'table does not match the name');
    const checked = await readChecksumTable(fh, data.length, crc32(table));
    assert.ok(checked);
    let released = 0;
    let corrupt = 0;
    const reader = new BlockReader(fh, checked, data.length, () => released++, () => corrupt++);
    const into = Buffer.alloc(2 * CHUNK);
    const two = await reader.chunk(1, into, 2);
    assert.ok(two && two.buffer === into.buffer && two.equals(data.subarray(CHUNK)));
    await fh.write(Buffer.from([data[5]! ^ 0xff]), 0, 1, 5);
    assert.equal(await reader.chunk(0), undefined);
    assert.equal(corrupt, 1);
    await reader.close();
    await reader.close();
    assert.equal(released, 1, 'released once');
  });
});

test('lock file: a live owner is refused, a dead one taken over', async () => {
  await inTemp(async (dir) => {
    const path = join(dir, 'LOCK');
    await writeFile(path, String(process.ppid));
    await assert.rejects(new LockFile(path, dir).take(), CacheInUseError);
    assert.equal(await LockFile.owner(path), process.ppid);
    await writeFile(path, '999999999');
    const lock = new LockFile(path, dir);
    await lock.take();
    assert.equal(await readFile(path, 'utf8'), String(process.pid));
    await lock.release();
    assert.equal(await LockFile.owner(path), undefined);
  });
});
