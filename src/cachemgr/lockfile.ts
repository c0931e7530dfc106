import { readFile, unlink, writeFile } from 'node:fs/promises';
import { CacheInUseError } from '../errors.js';

// One process owns a cache directory: its pid is in <root>/LOCK. A lock left by a dead
// process is taken over; one of a live process is refused (CacheInUseError).

export class LockFile {
  #held = false;

  constructor(readonly path: string, readonly root: string) {}

  async take(): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(this.path, String(process.pid), { flag: 'wx', mode: 0o600 });
        this.#held = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (await LockFile.owner(this.path)) throw new CacheInUseError(this.root);
        await unlink(this.path).catch(() => {}); // stale lock of a dead process
      }
    }
    throw new CacheInUseError(this.root);
  }

  async release(): Promise<void> {
    if (!this.#held) return;
    await unlink(this.path).catch(() => {});
    this.#held = false;
  }

  /** The pid of a live process (not this one) holding the lock file at `path`, if any. */
  static async owner(path: string): Promise<number | undefined> {
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    return pid > 0 && pid !== process.pid && isAlive(pid) ? pid : undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
