import { watch, type FSWatcher } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { canonicalPath } from '../davpath.js';
import { isTemp } from './fs-temp.js';

// Changes made in an fs upstream's directory behind the gateway's back (another program, a
// sync tool, a user's shell), as DAV paths, so the cache forgets them at once instead of
// after its TTL. Events come in bursts (an editor's save is several), so they are gathered
// for a few milliseconds and reported once per path. What inotify cannot report (a network
// file system changed from another host) still shows after the TTL.

export interface TreeWatcher {
  close(): void;
}

export interface WatchOptions {
  /** Events are gathered this long before they are reported (default 50 ms). */
  debounceMs?: number;
  /** The watch failed (inotify limit, root removed): changes show after the TTL again. */
  onError?: (err: unknown) => void;
}

/** The DAV path of a name relative to the root, or undefined for the upstream's own temporaries. */
export function pathOfChange(relative: string | null): string | undefined {
  if (relative === null || relative === '') return '/';
  const segs = relative.split(sep);
  if (segs.some(isTemp)) return undefined;
  try {
    return canonicalPath(segs.join('/'));
  } catch {
    return undefined;
  }
}

/** Collects paths and reports them once per `ms`. */
function gatherer(ms: number, report: (paths: string[]) => void): { add(path: string): void; close(): void } {
  let pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  return {
    add(path) {
      pending.add(path);
      timer ??= setTimeout(() => {
        const paths = [...pending];
        pending = new Set();
        timer = undefined;
        report(paths);
      }, ms);
    },
    close() { clearTimeout(timer); },
  };
}

/**
 * One watcher per directory (inotify reports its children's changes by name), new directories
 * added as they appear and forgotten as they go. A directory found after the start is reported
 * again once it is watched: what was written into it before then is not missed.
 */
function watchEachDirectory(root: string, onName: (relative: string | null) => void, onError: (err: unknown) => void): TreeWatcher {
  const watchers = new Map<string, FSWatcher>();
  let closed = false;
  const forget = (rel: string) => {
    for (const [r, w] of watchers) if (r === rel || r.startsWith(rel + sep)) { w.close(); watchers.delete(r); }
  };
  const add = async (rel: string): Promise<void> => {
    if (closed || watchers.has(rel)) return;
    let w: FSWatcher;
    try {
      w = watch(join(root, rel), (event, name) => {
        if (name === null) { onName(rel || null); return; }
        const child = join(rel, name.toString());
        onName(child);
        // Directories come and go by renames; a write is only a change of its file.
        if (event === 'rename' && pathOfChange(child) !== undefined) changed(child).catch(onError);
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && rel !== '') return; // gone again already
      throw err;
    }
    w.on('error', (err) => { forget(rel); if (rel === '') onError(err); });
    watchers.set(rel, w);
    const entries = await readdir(join(root, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory() && !isTemp(e.name)) await add(join(rel, e.name));
  };
  const changed = async (child: string): Promise<void> => {
    const st = await lstat(join(root, child)).catch(() => undefined); // a symlink is not followed: no loops
    if (!st?.isDirectory()) { forget(child); return; }
    if (watchers.has(child)) return;
    await add(child);
    onName(child);
  };
  add('').catch(onError);
  return { close() { closed = true; for (const w of watchers.values()) w.close(); watchers.clear(); } };
}

/** Watch the tree under `root`; `onChange` gets the DAV paths that changed. */
export function watchTree(root: string, onChange: (paths: string[]) => void, opts: WatchOptions = {}): TreeWatcher {
  const onError = opts.onError ?? (() => {});
  const gather = gatherer(opts.debounceMs ?? 50, onChange);
  const onName = (relative: string | null): void => {
    const path = pathOfChange(relative);
    if (path !== undefined) gather.add(path);
  };
  // Node 20 emulates recursive watching on Linux with a watcher per file (an inode), a synchronous
  // walk of the tree and an event for every file at start, and misses the writes to a file once
  // it was replaced by a rename (how editors and davgate itself save): so only where the system
  // watches trees itself is it used.
  let inner: TreeWatcher;
  try {
    if (process.platform !== 'darwin' && process.platform !== 'win32') {
      inner = watchEachDirectory(root, onName, onError);
    } else {
      const w = watch(root, { recursive: true }, (_event, name) => onName(name === null ? null : name.toString()));
      w.on('error', (err) => { w.close(); onError(err); });
      inner = w;
    }
  } catch (err) {
    onError(err);
    return { close: () => gather.close() };
  }
  return { close() { inner.close(); gather.close(); } };
}
