// Verdicts that noise cannot flip: every row is measured run-major (run i of every server, then
// run i+1), so run i of davgate and run i of a peer saw the same machine. A target is judged
// on those paired ratios, not on medians alone:
//   PASS          the median of the paired ratios meets the target and at least 80 % of the
//                 pairs do;
//   MISS          the median misses it and at least 80 % of the pairs miss;
//   inconclusive  anything else: the spread is wider than the margin, so the run cannot tell.
// An absolute bound (`max`) is judged the same way on davgate's runs. A row is PASS when every
// target passes, MISS when one misses, else inconclusive.
import { median } from './util.js';

export type Verdict = 'PASS' | 'MISS' | 'inconclusive';

/** The share of pairs that must agree with the median for a verdict. */
export const AGREEMENT = 0.8;

/** Paired ratios a_i / b_i over the runs both have (interleaved runs pair up by index). */
export function pairedRatios(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.min(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (b[i]! > 0) out.push(a[i]! / b[i]!);
  return out;
}

/** Judge values (ratios, or absolute figures) against `meets`. */
export function judge(values: readonly number[], meets: (v: number) => boolean): Verdict | undefined {
  if (!values.length) return undefined;
  const ok = values.filter(meets).length / values.length;
  const m = meets(median(values));
  if (m && ok >= AGREEMENT) return 'PASS';
  if (!m && 1 - ok >= AGREEMENT) return 'MISS';
  return 'inconclusive';
}

/** All targets of a row: PASS when all pass, MISS when one misses, else inconclusive. */
export function combine(verdicts: ReadonlyArray<Verdict | undefined>): Verdict | undefined {
  if (!verdicts.length || verdicts.some((v) => v === undefined)) return undefined;
  if (verdicts.includes('MISS')) return 'MISS';
  return verdicts.every((v) => v === 'PASS') ? 'PASS' : 'inconclusive';
}

export const minOf = (xs: readonly number[]): number => Math.min(...xs);
export const maxOf = (xs: readonly number[]): number => Math.max(...xs);
