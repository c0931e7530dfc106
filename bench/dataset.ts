// The generated data set every server serves: small.bin (4 KiB), big.bin (random, `bigSize`),
// many/ (`entries` tiny files) and an empty puts/ for the PUT runs.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import { MiB } from './util.js';

const execFileP = promisify(execFile);

export interface DataSet { bigSize: number; entries: number }

export async function writeRandomFile(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (let off = 0; off < size; off += 8 * MiB) await fh.write(randomBytes(Math.min(8 * MiB, size - off)));
  } finally {
    await fh.close();
  }
}

/** `count` tiny files named f0.txt… in `dir` (created). */
export async function writeManyFiles(dir: string, count: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const limit = pLimit(64);
  await Promise.all(Array.from({ length: count }, (_, i) => limit(() => writeFile(join(dir, `f${i}.txt`), `${i}\n`))));
}

export async function generate(root: string, ds: DataSet): Promise<void> {
  await writeFile(join(root, 'small.bin'), randomBytes(4096));
  await writeRandomFile(join(root, 'big.bin'), ds.bigSize);
  await writeManyFiles(join(root, 'many'), ds.entries);
  await mkdir(join(root, 'puts'));
}

/**
 * The same data set under another server's root: hard links (no copy), then owned by `owner`
 * when given (Apache's children run as www-data when the harness runs as root).
 */
export async function linkInto(fromRoot: string, toRoot: string, owner?: string): Promise<void> {
  await execFileP('cp', ['-al', `${fromRoot}/.`, toRoot]);
  if (owner) await execFileP('chown', ['-R', owner, toRoot]);
}
