import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
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

/** Where recursive watching is missing: one watcher per directory, new directories added as they appear. */
function watchEachDirectory(root: string, onName: (relative: string | null) => void, onError: (err: unknown) => void): TreeWatcher {
  const watchers = new Map<string, FSWatcher>();
  let closed = false;
  const add = async (rel: string): Promise<void> => {
    if (closed || watchers.has(rel)) return;
    const w = watch(join(root, rel), (_event, name) => {
      const child = name === null ? null : rel ? join(rel, name.toString()) : name.toString();
      onName(child);
      if (child !== null) void stat(join(root, child)).then((st) => (st.isDirectory() ? add(child) : undefined), () => undefined).catch(onError);
    });
    w.on('error', () => { w.close(); watchers.delete(rel); });
    watchers.set(rel, w);
    for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
      if (e.isDirectory() && !isTemp(e.name)) await add(rel ? join(rel, e.name) : e.name);
    }
  };
  add('').catch(onError);
  return { close() { closed = true; for (const w of watchers.values()) w.close(); } };
}

/** Watch the tree under `root`; `onChange` gets the DAV paths that changed. */
export function watchTree(root: string, onChange: (paths: string[]) => void, opts: WatchOptions = {}): TreeWatcher {
  const onError = opts.onError ?? (() => {});
  const gather = gatherer(opts.debounceMs ?? 50, onChange);
  const onName = (relative: string | null): void => {
    const path = pathOfChange(relative);
    if (path !== undefined) gather.add(path);
  };
  let inner: TreeWatcher;
  try {
    const w = watch(root, { recursive: true }, (_event, name) => onName(name === null ? null : name.toString()));
    w.on('error', (err) => { w.close(); onError(err); });
    inner = w;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_FEATURE_UNAVAILABLE_ON_PLATFORM') {
      onError(err);
      return { close: () => gather.close() };
    }
    inner = watchEachDirectory(root, onName, onError);
  }
  return { close() { inner.close(); gather.close(); } };
}
