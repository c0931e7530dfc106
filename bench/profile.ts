// `--cpu-prof`: every davgate the bench starts writes a V8 CPU profile, and after
// the run each profile is summarised: the functions with the most self time, idle included
// (a main thread that waits on the thread pool or the socket shows as idle).
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

/**
 * How to start davgate so that it writes its profile into `dir` when it exits: the bin's own
 * memory settings (its shebang line), plus the profiler.
 */
export const profiledStart = (dir: string): { env: Record<string, string>; nodeArgs: string[] } => ({
  env: { MALLOC_MMAP_THRESHOLD_: '1048576' },
  nodeArgs: ['--max-semi-space-size=4', '--cpu-prof', `--cpu-prof-dir=${dir}`],
});

const frameName = (n: ProfileNode): string => {
  const url = n.callFrame.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, '');
  return `${n.callFrame.functionName || '(anonymous)'} ${url}${url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
};

/** The `top` functions by self time, as "share  function file:line" lines. */
export function summarise(p: CpuProfile, top = 15): string[] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const k = frameName(byId.get(id)!);
    self.set(k, (self.get(k) ?? 0) + dt);
    total += dt;
  });
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([k, t]) => `${((100 * t) / total).toFixed(1).padStart(5)} %  ${k}`);
}

/** Summaries of every profile in `dir`, written to `dir`/summary.md; returns the text. */
export async function summariseDir(dir: string): Promise<string> {
  const files = (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.cpuprofile')).sort();
  const parts: string[] = [];
  for (const f of files) {
    const p = JSON.parse(await readFile(join(dir, f), 'utf8')) as CpuProfile;
    const seconds = (p.endTime - p.startTime) / 1e6;
    parts.push(`## ${f} (${seconds.toFixed(1)} s)`, '', '```', ...summarise(p), '```', '');
  }
  const text = parts.length ? parts.join('\n') : `no profiles in ${dir}\n`;
  await writeFile(join(dir, 'summary.md'), text);
  return text;
}
