import { constants as C } from 'node:fs';
import { lstat, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from '@node-rs/crc32';
import { CHUNK } from './blockfile.js';
import type { BlockMeta, BlockStore } from './blockstore.js';

// `cache verify`: every block file read back and checked against its checksums, and the index
// held in memory compared with the files of the block directory. Read-only unless `repair`.

export interface VerifyReport {
  /** Blocks in the index when the check began, and their bytes on disk. */
  blocks: number;
  bytes: number;
  ok: number;
  /** Block files whose size, checksum table or data does not match (dropped by repair). */
  corrupt: string[];
  /** Indexed blocks whose file is gone (forgotten by repair). */
  missing: string[];
  /** Block files the index does not know, and files that are no block at all (removed by repair). */
  orphans: string[];
  repaired: boolean;
}

export interface VerifyOptions {
  repair: boolean;
  onProgress?(doneBytes: number, totalBytes: number): void;
}

/** Data length of a block file of `fileSize` bytes: the data, then 4 bytes per CHUNK of it. */
function dataLength(fileSize: number): number | undefined {
  const chunks = Math.ceil(fileSize / (CHUNK + 4));
  const data = fileSize - 4 * chunks;
  return data > (chunks - 1) * CHUNK && data <= chunks * CHUNK ? data : undefined;
}

type Verdict = 'ok' | 'corrupt' | 'missing';

async function checkBlock(file: string, b: BlockMeta, buf: Buffer): Promise<Verdict> {
  let fh;
  try {
    fh = await open(file, C.O_RDONLY | C.O_NOFOLLOW);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'corrupt';
  }
  try {
    const st = await fh.stat();
    const data = st.isFile() ? dataLength(st.size) : undefined;
    if (data === undefined || st.size !== b.size) return 'corrupt';
    const table = Buffer.allocUnsafe(st.size - data);
    if ((await fh.read(table, 0, table.length, data)).bytesRead !== table.length || crc32(table) !== b.crc) return 'corrupt';
    for (let c = 0; c * CHUNK < data; c++) {
      const len = Math.min(CHUNK, data - c * CHUNK);
      const { bytesRead } = await fh.read(buf, 0, len, c * CHUNK);
      if (bytesRead !== len || crc32(buf.subarray(0, len)) !== table.readUInt32LE(c * 4)) return 'corrupt';
    }
    return 'ok';
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Every file under blocks/ (shard/key/name), as paths. */
async function filesOnDisk(root: string): Promise<string[]> {
  const out: string[] = [];
  const blocks = join(root, 'blocks');
  for (const shard of await readdir(blocks, { withFileTypes: true }).catch(() => [])) {
    const shardDir = join(blocks, shard.name);
    if (!shard.isDirectory()) { out.push(shardDir); continue; }
    for (const key of await readdir(shardDir, { withFileTypes: true })) {
      const keyDir = join(shardDir, key.name);
      if (!key.isDirectory()) { out.push(keyDir); continue; }
      for (const f of await readdir(keyDir)) out.push(join(keyDir, f));
    }
  }
  return out;
}

export async function verifyBlocks(store: BlockStore, opts: VerifyOptions): Promise<VerifyReport> {
  const indexed = store.list();
  const total = indexed.reduce((n, b) => n + b.size, 0);
  const report: VerifyReport = { blocks: indexed.length, bytes: total, ok: 0, corrupt: [], missing: [], orphans: [], repaired: opts.repair };
  const buf = Buffer.allocUnsafe(CHUNK);
  let done = 0;
  for (const b of indexed) {
    // Evicted or replaced since the snapshot (a running gateway): nothing to check any more.
    if (!store.holds(b)) { done += b.size; continue; }
    const file = store.fileOf(b);
    const verdict = await checkBlock(file, b, buf);
    if (verdict === 'ok') report.ok++;
    else if (store.holds(b)) {
      (verdict === 'corrupt' ? report.corrupt : report.missing).push(file);
      if (opts.repair) store.drop(b, verdict === 'corrupt');
    }
    done += b.size;
    opts.onProgress?.(done, total);
  }
  // Files of the block directory that the index does not hold (looked at after the index, so
  // a block installed meanwhile is known; one evicted meanwhile is gone from the disk too).
  const known = new Set(store.list().map((b) => store.fileOf(b)));
  for (const f of new Set([...await filesOnDisk(store.root), ...store.strays])) {
    if (known.has(f) || !(await lstat(f).then(() => true, () => false))) continue;
    report.orphans.push(f);
  }
  if (opts.repair) {
    await store.removeStrays();
    for (const f of report.orphans) await rm(f, { recursive: true, force: true });
  }
  return report;
}
