// WebDAV compliance: runs each litmus suite against a real davgate process.
// Every suite must pass completely (104 of 104), with no warning left unexplained.
// After every suite the gateway must still be alive and answer OPTIONS with 200.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freeDir, removeDir, startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';

const SUITE_TIMEOUT_MS = 120_000;

interface SuiteSpec {
  name: string;
  /** When true, the suite must have 0 failures. */
  strict: boolean;
}

const SUITES: SuiteSpec[] = [
  { name: 'basic', strict: true },
  { name: 'copymove', strict: true },
  { name: 'props', strict: true },
  { name: 'locks', strict: true },
  { name: 'http', strict: true },
];

export interface LitmusTestResult {
  index: number;
  name: string;
  status: 'pass' | 'fail' | 'skipped' | 'unknown';
  message: string;
  warnings: string[];
}

export interface LitmusSummary {
  suite: string;
  run: number;
  passed: number;
  failed: number;
  skipped: number;
  warnings: number;
  tests: LitmusTestResult[];
  /** false when no summary line was found (litmus crashed, timed out, or could not connect). */
  complete: boolean;
}

/**
 * Parses the output of one litmus suite. Test lines look like
 * `\r 3. put_get............... \r 3. put_get............... pass` (or `FAIL (message)`, possibly over
 * several lines, or `SKIPPED`), warnings like `\r18. name WARNING: text\n    ....... pass (with 1 warning)`,
 * and the summary like `<- summary for `basic': of 16 tests run: 16 passed, 0 failed. 100.0%`
 * followed optionally by `-> N tests were skipped.` (before it) and `-> 1 warning was issued.`.
 */
export function parseLitmusOutput(suite: string, output: string): LitmusSummary {
  const summaryRe = /<- summary for `([^']+)': of (\d+) tests? run: (\d+) passed, (\d+) failed\./;
  const sm = summaryRe.exec(output);
  const skippedM = /-> (\d+) tests? (?:were|was) skipped\./.exec(output);
  const warnM = /-> (\d+) warnings? (?:were|was) issued\./.exec(output);

  // Per-test results: split on the `\r NN. name....` markers.
  const body = sm ? output.slice(0, sm.index) : output;
  const markerRe = /\r\s*(\d+)\.\s(\S+?)\.*\s/g;
  const marks: { index: number; name: string; start: number; end: number }[] = [];
  for (let m = markerRe.exec(body); m !== null; m = markerRe.exec(body)) {
    marks.push({ index: Number(m[1]), name: m[2] ?? '', start: m.index, end: m.index + m[0].length });
  }
  const byIndex = new Map<number, LitmusTestResult>();
  for (let i = 0; i < marks.length; i++) {
    const mk = marks[i]!;
    const next = marks[i + 1];
    let text = body.slice(mk.end, next ? next.start : body.length);
    text = text
      .replace(/^-> \d+ (?:tests? (?:were|was) skipped|warnings? (?:were|was) issued)\.\s*$/gm, '')
      // after a warning, the next test's line starts with a `    ......... ` filler instead of its name
      .replace(/\n[ \t]*\.+[ \t]*$/, '')
      .trim();
    if (text === '') continue; // the first half of `\r N. name... \r N. name... result`
    const warnings = [...text.matchAll(/WARNING: ([^\n]*)/g)].map((w) => (w[1] ?? '').trim());
    let status: LitmusTestResult['status'] = 'unknown';
    let message = '';
    const fail = /FAIL(?: \(([\s\S]*)\))?\s*$/.exec(text);
    if (fail) {
      status = 'fail';
      message = (fail[1] ?? '').replace(/\s+/g, ' ').trim();
    } else if (/SKIPPED\s*$/.test(text)) {
      status = 'skipped';
    } else if (/pass(?: \(with \d+ warnings?\))?\s*$/.test(text)) {
      status = 'pass';
    } else {
      message = text.replace(/\s+/g, ' ').trim();
    }
    byIndex.set(mk.index, { index: mk.index, name: mk.name, status, message, warnings });
  }
  const tests = [...byIndex.values()].sort((a, b) => a.index - b.index);

  if (sm) {
    return {
      suite: sm[1] ?? suite,
      run: Number(sm[2]),
      passed: Number(sm[3]),
      failed: Number(sm[4]),
      skipped: skippedM ? Number(skippedM[1]) : tests.filter((t) => t.status === 'skipped').length,
      warnings: warnM ? Number(warnM[1]) : 0,
      tests,
      complete: true,
    };
  }
  // No summary: count what we saw; anything unfinished counts as failed.
  const passed = tests.filter((t) => t.status === 'pass').length;
  const skipped = tests.filter((t) => t.status === 'skipped').length;
  const run = tests.length - skipped;
  return { suite, run, passed, failed: run - passed, skipped, warnings: 0, tests, complete: false };
}

interface LitmusRun {
  output: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/** Runs one litmus suite (TESTS=<suite> litmus <url>) in `cwd` (litmus writes debug.log/child.log there). */
function runLitmus(suite: string, url: string, cwd: string, timeoutMs: number): Promise<LitmusRun> {
  return new Promise((resolve, reject) => {
    // detached: litmus is a shell script that runs the suite binary as a child; kill the whole group.
    const child = spawn('litmus', [url], {
      cwd,
      env: { ...process.env, TESTS: suite },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (output += c));
    child.stderr.on('data', (c: string) => (output += c));
    const killGroup = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), 2000).unref();
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run litmus (is the litmus package installed?): ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ output, code, signal, timedOut });
    });
  });
}

async function optionsStatus(url: string): Promise<number> {
  const res = await fetch(url, { method: 'OPTIONS', signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer().catch(() => undefined);
  return res.status;
}

describe('litmus WebDAV compliance', () => {
  let gw: GatewayProcess | undefined;
  let workDir = '';
  let keepWorkDir = false;
  const results: LitmusSummary[] = [];

  /** The running gateway; a crashed one is replaced so one crash does not hide later suites' results. */
  async function gateway(): Promise<GatewayProcess> {
    if (gw && gw.alive()) return gw;
    if (gw) {
      await writeFile(join(workDir, `crashed-gateway-${gw.pid}.stderr.log`), gw.stderr());
      await writeFile(join(workDir, `crashed-gateway-${gw.pid}.stdout.log`), gw.stdout());
      keepWorkDir = true;
      await gw.stop();
    }
    gw = await startGatewayProcess({});
    return gw;
  }

  before(async () => {
    workDir = await freeDir('davgate-litmus-');
    await gateway();
  });

  after(async () => {
    if (gw) {
      if (keepWorkDir) {
        await writeFile(join(workDir, 'gateway.stderr.log'), gw.stderr()).catch(() => undefined);
        await writeFile(join(workDir, 'gateway.stdout.log'), gw.stdout()).catch(() => undefined);
      }
      await gw.stop();
    }
    const run = results.reduce((n, r) => n + r.run, 0);
    const passed = results.reduce((n, r) => n + r.passed, 0);
    console.log(`litmus total: ${passed}/${run} passed`);
    if (keepWorkDir) console.log(`litmus logs kept in ${workDir}`);
    else await removeDir(workDir);
  });

  for (const suite of SUITES) {
    test(`litmus ${suite.name}`, { timeout: SUITE_TIMEOUT_MS + 30_000 }, async () => {
      const g = await gateway();
      const suiteDir = join(workDir, suite.name);
      await mkdir(suiteDir, { recursive: true });

      const r = await runLitmus(suite.name, g.url, suiteDir, SUITE_TIMEOUT_MS);
      await writeFile(join(suiteDir, 'litmus.out'), r.output);
      const s = parseLitmusOutput(suite.name, r.output);
      results.push(s);

      const extra = [
        s.skipped ? `${s.skipped} skipped` : '',
        s.warnings ? `${s.warnings} warnings` : '',
        r.timedOut ? `TIMED OUT after ${SUITE_TIMEOUT_MS} ms` : '',
        !s.complete && !r.timedOut ? `no summary (exit ${r.code ?? r.signal})` : '',
      ].filter(Boolean);
      console.log(`litmus ${suite.name}: ${s.passed}/${s.run} passed${extra.length ? ` (${extra.join(', ')})` : ''}`);
      const failures = s.tests.filter((t) => t.status === 'fail' || t.status === 'unknown');
      for (const t of failures) console.log(`  FAIL ${suite.name} ${t.index}. ${t.name}: ${t.message}`);
      for (const t of s.tests) for (const w of t.warnings) console.log(`  WARNING ${suite.name} ${t.index}. ${t.name}: ${w}`);
      if (failures.length > 0 || !s.complete) {
        keepWorkDir = true;
        console.log(`  (debug trace: ${join(suiteDir, 'debug.log')})`);
      }

      // The gateway must survive every suite, whatever litmus threw at it.
      assert.ok(g.alive(), `gateway died during litmus ${suite.name}; stderr:\n${g.stderr().slice(-4000)}\nstdout:\n${g.stdout().slice(-4000)}`);
      assert.equal(await optionsStatus(g.url), 200, `OPTIONS ${g.url} after litmus ${suite.name}`);

      assert.ok(!r.timedOut, `litmus ${suite.name} timed out after ${SUITE_TIMEOUT_MS} ms`);
      assert.ok(s.complete, `litmus ${suite.name} printed no summary line; output:\n${r.output.slice(-4000)}`);
      if (suite.strict) {
        assert.equal(
          s.failed,
          0,
          `litmus ${suite.name}: ${s.failed} failed:\n` + failures.map((t) => `  ${t.index}. ${t.name}: ${t.message}`).join('\n'),
        );
        assert.equal(s.passed, s.run);
      }
    });
  }
  test('litmus total: 104 of 104 tests passed', () => {
    assert.equal(results.length, SUITES.length, 'every suite ran');
    const run = results.reduce((n, r) => n + r.run, 0);
    const passed = results.reduce((n, r) => n + r.passed, 0);
    assert.equal(run, 104);
    assert.equal(passed, 104);
  });

});
