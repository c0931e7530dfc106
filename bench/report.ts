// Rows of raw runs → medians, ratios, targets (PASS/MISS), the markdown table and the files
// under bench/results/.
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { median } from './util.js';
import { combine, judge, maxOf, minOf, pairedRatios, type Verdict } from './verdict.js';

export const COLUMNS = ['davgate', 'rclone', 'nginx', 'apache'] as const;
export type Column = (typeof COLUMNS)[number];

/**
 * davgate against the others (verdict.ts). For 'higher' rows davgate must be ≥ factor × other,
 * for 'lower' rows ≤ factor × other; `max` is an absolute upper bound on davgate's value.
 */
export interface Target { rclone?: number; nginx?: number; apache?: number; max?: number }
const PEERS = ['rclone', 'nginx', 'apache'] as const;

export interface Row {
  id: string;
  name: string;
  unit: string;
  better: 'higher' | 'lower';
  runs: Partial<Record<Column, number[]>>;
  /** Why a column has no runs (server failed to start, request failed, ...). */
  errors?: Partial<Record<Column, string>>;
  /** Anything else worth keeping per column (response times of PUTs, latencies, ...). */
  extra?: Record<string, unknown>;
  target?: Target;
}

export function newRow(id: string, name: string, unit: string, better: Row['better'], target?: Target): Row {
  return { id, name, unit, better, runs: {}, ...(target ? { target } : {}) };
}

export function addRun(row: Row, col: Column, value: number): void {
  (row.runs[col] ??= []).push(value);
}

export function fail(row: Row, col: Column, why: string): void {
  (row.errors ??= {})[col] = why;
}

export const med = (row: Row, col: Column): number | undefined => {
  const xs = row.runs[col];
  return xs && xs.length ? median(xs) : undefined;
};

function ratio(row: Row, col: Column): number | undefined {
  const d = med(row, 'davgate');
  const o = med(row, col);
  return d !== undefined && o !== undefined && o > 0 ? d / o : undefined;
}

function targetText(row: Row): string {
  const t = row.target;
  if (!t) return '';
  const op = row.better === 'higher' ? '≥' : '≤';
  const parts: string[] = [];
  for (const c of PEERS) if (t[c] !== undefined) parts.push(`${op} ${t[c]}× ${c}`);
  if (t.max !== undefined) parts.push(`≤ ${t.max} ${row.unit}`);
  return parts.join(', ');
}

/** Paired ratios of davgate's runs to a peer's (runs are interleaved, so run i meets run i). */
export const ratiosTo = (row: Row, col: Column): number[] => pairedRatios(row.runs.davgate ?? [], row.runs[col] ?? []);

/** PASS, MISS or inconclusive (verdict.ts); undefined when there is no target or nothing to judge. */
export function verdict(row: Row): Verdict | undefined {
  const t = row.target;
  const d = row.runs.davgate;
  if (!t || !d?.length) return undefined;
  const verdicts: Array<Verdict | undefined> = [];
  for (const col of PEERS) {
    const f = t[col];
    if (f === undefined) continue;
    verdicts.push(judge(ratiosTo(row, col), (r) => (row.better === 'higher' ? r >= f : r <= f)));
  }
  if (t.max !== undefined) verdicts.push(judge(d, (v) => v <= t.max!));
  return combine(verdicts);
}

function fmt(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

/** "median (min–max)" of a column's runs. */
function spreadCell(xs: readonly number[]): string {
  return xs.length > 1 ? `${fmt(median(xs))} (${fmt(minOf(xs))}–${fmt(maxOf(xs))})` : fmt(xs[0]);
}

export function markdown(rows: Row[]): string {
  const lines = [
    '| benchmark | unit | davgate | rclone | nginx | apache | davgate/rclone | davgate/nginx | davgate/apache | target | result |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|---|---|',
  ];
  for (const r of rows) {
    const cell = (c: Column) => (r.runs[c]?.length ? spreadCell(r.runs[c]) : r.errors?.[c] ? 'n/a' : '–');
    // The median of the paired ratios, with their range: the figure the verdict judges.
    const rr = (c: Column) => { const x = ratiosTo(r, c); return x.length ? `${median(x).toFixed(2)}× (${minOf(x).toFixed(2)}–${maxOf(x).toFixed(2)})` : '–'; };
    const v = verdict(r);
    lines.push(`| ${r.name} | ${r.unit} | ${COLUMNS.map(cell).join(' | ')} | ${rr('rclone')} | ${rr('nginx')} | ${rr('apache')} | ${targetText(r)} | ${v ?? (r.target ? 'n/a' : '')} |`);
  }
  return lines.join('\n');
}

/** Plain JSON of the rows with their medians, spreads, paired ratios and verdicts beside the raw runs. */
export function rowsJson(rows: Row[]): unknown[] {
  return rows.map((r) => ({
    ...r,
    medians: Object.fromEntries(COLUMNS.filter((c) => r.runs[c]?.length).map((c) => [c, med(r, c)])),
    spread: Object.fromEntries(COLUMNS.filter((c) => r.runs[c]?.length).map((c) => [c, { min: minOf(r.runs[c]!), max: maxOf(r.runs[c]!) }])),
    ratioToRclone: ratio(r, 'rclone') ?? null,
    ratioToNginx: ratio(r, 'nginx') ?? null,
    pairedRatios: Object.fromEntries(PEERS.filter((c) => r.runs[c]?.length).map((c) => [c, ratiosTo(r, c)])),
    ...(r.target ? { targetText: targetText(r), verdict: verdict(r) ?? null } : {}),
  }));
}

export const resultsDir = (): string => fileURLToPath(new URL('../../bench/results/', import.meta.url));

export const stamp = (d = new Date()): string => d.toISOString().replace(/[:.]/g, '-');

/** Writes bench/results/<prefix><timestamp>.json and, given `md`, bench/results/<mdName>. */
export async function writeResults(prefix: string, json: unknown, md?: { name: string; text: string }): Promise<string> {
  const dir = resultsDir();
  await mkdir(dir, { recursive: true });
  const file = `${dir}${prefix}${stamp()}.json`;
  await writeFile(file, JSON.stringify(json, null, 2) + '\n');
  if (md) await writeFile(dir + md.name, md.text);
  return file;
}
