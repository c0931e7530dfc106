import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK_NAME } from './blockfile.js';
import type { BlockMeta } from './blockstore.js';

// Rebuilding the block index from the files, when no index was saved (the last run did not
// close cleanly): every block file under blocks/<k0k1>/<key>/ is listed and stat'ed (its size).
// What does not belong is handed to `stray` (removed, or only listed by a read-only open).

const HEX = /^[0-9a-f]+$/;

/** Top-level entries of blocks/ that are not shard directories (the cheap part of a scan). */
export async function strayShards(blocksDir: string, stray: (path: string) => Promise<void>): Promise<void> {
  for (const shard of await readdir(blocksDir, { withFileTypes: true })) {
    if (!shard.isDirectory() || !HEX.test(shard.name)) await stray(join(blocksDir, shard.name));
  }
}

/** Every block file, least recently written first (the LRU order survives a crash approximately). */
export async function scanBlockFiles(blocksDir: string, stray: (path: string) => Promise<void>): Promise<BlockMeta[]> {
  const found: BlockMeta[] = [];
  const scanKey = async (keyName: string, keyDir: string): Promise<void> => {
    for (const f of await readdir(keyDir, { withFileTypes: true })) {
      const m = BLOCK_NAME.exec(f.name);
      const p = join(keyDir, f.name);
      if (!f.isFile() || !m) { await stray(p); continue; }
      const st = await lstat(p);
      found.push({ key: keyName, version: m[1]!, index: parseInt(m[2]!, 16), size: st.size, crc: parseInt(m[3]!, 16), pins: 0, lastUsed: st.mtimeMs });
    }
  };
  for (const shard of await readdir(blocksDir, { withFileTypes: true })) {
    if (!shard.isDirectory() || !HEX.test(shard.name)) { await stray(join(blocksDir, shard.name)); continue; }
    // The key directories of a shard are scanned side by side: start-up time with a large
    // cache is mostly waiting on the file system, one entry at a time otherwise.
    const scans: Array<Promise<void>> = [];
    for (const keyEnt of await readdir(join(blocksDir, shard.name), { withFileTypes: true })) {
      const keyDir = join(blocksDir, shard.name, keyEnt.name);
      if (!keyEnt.isDirectory() || !HEX.test(keyEnt.name)) { await stray(keyDir); continue; }
      scans.push(scanKey(keyEnt.name, keyDir));
    }
    await Promise.all(scans);
  }
  found.sort((a, b) => a.lastUsed - b.lastUsed);
  return found;
}
