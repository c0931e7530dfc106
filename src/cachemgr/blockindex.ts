import { createReadStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { crc32 } from '@node-rs/crc32';
import type { BlockMeta } from './blockstore.js';

// The block index saved at a clean close, so the next start does not stat every block file
// (a million blocks: ~9 s of scanning, against ~1 s to read this file). It is consumed at
// open: the store deletes it before changing anything, so after a crash there is none and
// the store scans the files again. Trusting it costs no safety: every block is still checked
// against its checksums when read, and a missing file is a miss.
//
// Format, text: a header of fixed width (written last, at offset 0), then one line per
// block, least recently used first:
//   davgate-blocks 1 <count, 12 digits> <crc32 of the lines, 8 hex>\n
//   <key> <version> <index hex> <size> <crc hex> <lastUsed ms>\n

export const INDEX_FILE = 'blocks.index';

const MAGIC = 'davgate-blocks 1 ';
const HEADER_BYTES = MAGIC.length + 12 + 1 + 8 + 1;
const HEX = /^[0-9a-f]+$/;
const BATCH = 4096;

export interface IndexedBlock {
  key: string;
  version: string;
  index: number;
  size: number;
  crc: number;
  lastUsed: number;
}

/**
 * Write the index of `blocks` (in LRU order) to `path`, atomically (tmp file, rename). Never
 * fails: when it cannot be written (cache directory gone, disk full) there is none, and as the
 * index only saves a scan, the next start scans instead and nothing is lost.
 */
export async function saveIndex(path: string, blocks: Iterable<IndexedBlock>): Promise<void> {
  const tmp = path + '.tmp';
  try {
    await writeIndex(tmp, blocks);
    await rename(tmp, path);
  } catch {
    await unlink(tmp).catch(() => undefined);
  }
}

async function writeIndex(tmp: string, blocks: Iterable<IndexedBlock>): Promise<void> {
  const fh = await open(tmp, 'w', 0o600);
  try {
    let pos = HEADER_BYTES;
    let crc = 0;
    let count = 0;
    let batch: string[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const buf = Buffer.from(batch.join(''), 'latin1');
      batch = [];
      crc = crc32(buf, crc);
      await fh.write(buf, 0, buf.length, pos);
      pos += buf.length;
    };
    for (const b of blocks) {
      batch.push(`${b.key} ${b.version} ${b.index.toString(16)} ${b.size} ${b.crc.toString(16)} ${Math.round(b.lastUsed)}\n`);
      count++;
      if (batch.length >= BATCH) await flush();
    }
    await flush();
    await fh.write(Buffer.from(header(count, crc), 'latin1'), 0, HEADER_BYTES, 0);
  } finally {
    await fh.close();
  }
}

function header(count: number, crc: number): string {
  return `${MAGIC}${String(count).padStart(12, '0')} ${crc.toString(16).padStart(8, '0')}\n`;
}

/**
 * The blocks listed in the index at `path`, or undefined when there is none or it is not
 * whole (wrong header, count or checksum, a malformed line): the caller scans instead. Each is
 * built as the store's own record, unpinned, with its fields in the same order, so a million
 * of them are kept as they are, with one object shape (a copy per record cost 2x the load
 * time and 1.7x the heap).
 */
export async function loadIndex(path: string): Promise<BlockMeta[] | undefined> {
  const out: BlockMeta[] = [];
  let head = '';
  let rest = '';
  let crc = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      let body = chunk;
      if (head.length < HEADER_BYTES) {
        const need = HEADER_BYTES - head.length;
        head += chunk.subarray(0, need).toString('latin1');
        body = chunk.subarray(need);
      }
      crc = crc32(body, crc);
      const text = rest + body.toString('latin1');
      const end = text.lastIndexOf('\n');
      if (end < 0) { rest = text; continue; }
      rest = text.slice(end + 1);
      for (const line of text.slice(0, end).split('\n')) {
        const b = parseLine(line);
        if (!b) return undefined;
        out.push(b);
      }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return rest === '' && head === header(out.length, crc) ? out : undefined;
}

function parseLine(line: string): BlockMeta | undefined {
  const f = line.split(' ');
  if (f.length !== 6) return undefined;
  const [key, version, index, size, crc, lastUsed] = f as [string, string, string, string, string, string];
  // Block paths are built from these: hex only, as the store's own names.
  if (key.length < 2 || !HEX.test(key) || !HEX.test(version) || !HEX.test(index) || !HEX.test(crc) || crc.length > 8) return undefined;
  const b = { key, version, index: parseInt(index, 16), size: Number(size), crc: parseInt(crc, 16), pins: 0, lastUsed: Number(lastUsed) };
  return Number.isSafeInteger(b.size) && b.size >= 0 && Number.isFinite(b.lastUsed) ? b : undefined;
}

export async function removeIndex(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
