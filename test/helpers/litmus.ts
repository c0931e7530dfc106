// All five litmus suites in one run against `url`, counted from their summary lines (the
// per-test parser is in test/e2e/litmus.test.ts, for the single gateway's own run).
import { spawn } from 'node:child_process';
import { freeDir, removeDir } from './gateway-process.js';

export interface LitmusTotals { suites: number; run: number; passed: number; output: string }

export async function runAllLitmus(url: string): Promise<LitmusTotals> {
  const dir = await freeDir('davgate-litmus-all-');
  try {
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('litmus', [url], { cwd: dir, env: { ...process.env, TESTS: 'basic copymove props locks http' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.once('error', reject);
      child.once('close', () => resolve(out));
    });
    const summaries = [...output.matchAll(/<- summary for `[^']+': of (\d+) tests? run: (\d+) passed/g)];
    return {
      suites: summaries.length,
      run: summaries.reduce((n, m) => n + Number(m[1]), 0),
      passed: summaries.reduce((n, m) => n + Number(m[2]), 0),
      output,
    };
  } finally {
    await removeDir(dir);
  }
}
