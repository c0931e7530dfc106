// `--compare FILE`: davgate's figures of this run against a saved run (a results JSON). A row
// got worse beyond its spread when its new median is worse than the saved run's worst run and
// differs from the saved median by more than the saved spread (max - min); anything less is
// within what the machine does from run to run.
import { readFile } from 'node:fs/promises';
import { median } from './util.js';

interface SavedRow { id: string; name: string; unit: string; better: 'higher' | 'lower'; runs: { davgate?: number[] } }

export interface Comparison { id: string; name: string; before: number; after: number; ratio: number; worse: boolean }

export async function loadRows(file: string): Promise<SavedRow[]> {
  const json = JSON.parse(await readFile(file, 'utf8')) as { rows?: SavedRow[] };
  if (!Array.isArray(json.rows)) throw new Error(`${file}: not a results file of the main benchmark (no rows)`);
  return json.rows;
}

export function compareRows(before: readonly SavedRow[], after: readonly SavedRow[]): Comparison[] {
  const out: Comparison[] = [];
  for (const a of after) {
    const b = before.find((r) => r.id === a.id);
    const [xs, ys] = [b?.runs.davgate ?? [], a.runs.davgate ?? []];
    if (!b || !xs.length || !ys.length) continue;
    const [mb, ma] = [median(xs), median(ys)];
    const worst = a.better === 'higher' ? Math.min(...xs) : Math.max(...xs);
    const beyondWorst = a.better === 'higher' ? ma < worst : ma > worst;
    const spread = Math.max(...xs) - Math.min(...xs);
    out.push({ id: a.id, name: a.name, before: mb, after: ma, ratio: ma / mb, worse: beyondWorst && Math.abs(ma - mb) > spread });
  }
  return out;
}

export function compareMarkdown(rows: readonly Comparison[], file: string): string {
  const lines = [`davgate against ${file} (medians; worse = beyond the saved run's spread)`, '',
    '| benchmark | before | after | after/before | |', '|---|--:|--:|--:|---|'];
  for (const r of rows) lines.push(`| ${r.name} | ${r.before.toPrecision(4)} | ${r.after.toPrecision(4)} | ${r.ratio.toFixed(2)}× | ${r.worse ? 'WORSE' : ''} |`);
  return lines.join('\n');
}
