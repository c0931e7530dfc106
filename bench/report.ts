// Rows of raw runs → medians, ratios, targets (PASS/MISS), the markdown table and the files
// under bench/results/.
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { median } from './util.js';

export const COLUMNS = ['davgate', 'rclone', 'nginx', 'apache'] as const;
export type Column = (typeof COLUMNS)[number];

/**
 * davgate's median against the others'. For 'higher' rows davgate must be ≥ factor × other,
 * for 'lower' rows ≤ factor × other; `max` is an absolute upper bound on davgate's value.
 */
export interface Target { rclone?: number; nginx?: number; max?: number }

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
  if (t.rclone !== undefined) parts.push(`${op} ${t.rclone}× rclone`);
  if (t.nginx !== undefined) parts.push(`${op} ${t.nginx}× nginx`);
  if (t.max !== undefined) parts.push(`≤ ${t.max} ${row.unit}`);
  return parts.join(', ');
}

/** true = PASS, false = MISS, undefined = no target or not measurable. */
export function verdict(row: Row): boolean | undefined {
  const t = row.target;
  if (!t) return undefined;
  const d = med(row, 'davgate');
  if (d === undefined) return undefined;
  const checks: boolean[] = [];
  for (const col of ['rclone', 'nginx'] as const) {
    const f = t[col];
    if (f === undefined) continue;
    const r = ratio(row, col);
    if (r === undefined) return undefined;
    checks.push(row.better === 'higher' ? r >= f : r <= f);
  }
  if (t.max !== undefined) checks.push(d <= t.max);
  return checks.every(Boolean);
}

function fmt(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

export function markdown(rows: Row[]): string {
  const lines = [
    '| benchmark | unit | davgate | rclone | nginx | apache | davgate/rclone | davgate/nginx | target | result |',
    '|---|---|--:|--:|--:|--:|--:|--:|---|---|',
  ];
  for (const r of rows) {
    const cell = (c: Column) => (r.runs[c]?.length ? fmt(med(r, c)) : r.errors?.[c] ? 'n/a' : '–');
    const rr = (c: Column) => { const x = ratio(r, c); return x === undefined ? '–' : `${x.toFixed(2)}×`; };
    const v = verdict(r);
    lines.push(`| ${r.name} | ${r.unit} | ${COLUMNS.map(cell).join(' | ')} | ${rr('rclone')} | ${rr('nginx')} | ${targetText(r)} | ${v === undefined ? (r.target ? 'n/a' : '') : v ? 'PASS' : 'MISS'} |`);
  }
  return lines.join('\n');
}

/** Plain JSON of the rows with their medians, ratios and verdicts beside the raw runs. */
export function rowsJson(rows: Row[]): unknown[] {
  return rows.map((r) => ({
    ...r,
    medians: Object.fromEntries(COLUMNS.filter((c) => r.runs[c]?.length).map((c) => [c, med(r, c)])),
    ratioToRclone: ratio(r, 'rclone') ?? null,
    ratioToNginx: ratio(r, 'nginx') ?? null,
    ...(r.target ? { targetText: targetText(r), pass: verdict(r) ?? null } : {}),
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
