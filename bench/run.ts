// `npm run bench [-- --quick] [-- --scale]`: davgate side by side with rclone
// (`serve webdav --vfs-cache-mode full`), nginx (dav-ext) and Apache (mod_dav) on the same
// generated data on loopback, in one run. Prints a markdown table (medians, ratios, targets)
// and writes bench/results/<timestamp>.json (raw runs + medians) and bench/results/latest.md.
// Not part of `npm test`.
//   --quick         3 runs, 64 MiB big file, 2k entries, 2 s wrk runs (< 3 minutes)
//   --scale         the scale suite instead (bench/scale.ts): PROPFIND at 1k/10k/100k entries,
//                   start-up and getnode latency with 100k cached blocks, 64 concurrent clients;
//                   writes bench/results/scale-<timestamp>.json (with --quick: fewer runs)
//   --soak          the soak instead (bench/soak.ts): 64 clients of mixed load for 30 minutes over a
//                   cache smaller than the working set (--soak-minutes N); RSS, heap, fds, p99, errors
//   --cluster       one davgate vs three behind haproxy (bench/cluster.ts): consistent hashing and
//                   round robin, cold and hot GET MiB/s, upstream bytes; writes cluster-<timestamp>.json
//                   (--cluster-files N, --cluster-file-mib N, --cluster-cache-mib N, --clients N)
//   --runs N, --big-mib N, --entries N, --wrk-seconds N   override the mode's settings
//   --only ID[,ID]  only the sections of these rows (e.g. get-4k-hot; Ceph starts only for S3)
//   --cpu-prof      every davgate writes a CPU profile; summaries in bench/results/profiles/<stamp>/
//   --compare FILE  after the run, davgate's rows against a saved results JSON (WORSE beyond its
//                   spread); with --against FILE2, compare two saved files and run nothing
import { cpus, loadavg } from 'node:os';
import { markdown, resultsDir, rowsJson, stamp, writeResults } from './report.js';
import { compareMarkdown, compareRows, loadRows } from './compare.js';
import { profiledStart, summariseDir } from './profile.js';
import { runCluster } from './cluster.js';
import { runScale } from './scale.js';
import { runSoak } from './soak.js';
import { killAllSync, profileDavgate, stopAll } from './servers.js';
import { runMain, type Settings } from './suite.js';
import { MiB, cpuBusy, elapsedSeconds, ensureServerPackages, environment, log, need } from './util.js';

const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(name);
function num(name: string, dflt: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} needs a positive number`);
  return v;
}

const text = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (!v || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
};

const quick = flag('--quick');
const only = text('--only');
const settings: Settings = {
  quick,
  runs: num('--runs', quick ? 3 : 5),
  bigSize: num('--big-mib', quick ? 64 : 256) * MiB,
  entries: num('--entries', quick ? 2000 : 10_000),
  wrkSeconds: num('--wrk-seconds', quick ? 2 : 8),
  streams: 16,
  ...(only ? { only: new Set(only.split(',')) } : {}),
};

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping every server`);
    killAllSync();
    process.exit(130);
  });
}

async function main(): Promise<void> {
  const compare = text('--compare');
  const against = text('--against');
  if (compare && against) {
    console.log(compareMarkdown(compareRows(await loadRows(compare), await loadRows(against)), compare));
    return;
  }
  const profiles = flag('--cpu-prof') ? `${resultsDir()}profiles/${stamp()}/` : undefined;
  if (profiles) profileDavgate(profiledStart(profiles));
  if (!flag('--cluster')) { // the cluster mode runs davgate, redis-server and haproxy only
    need('wrk', 'wrk');
    need('rclone', 'rclone');
    need('curl', 'curl');
    ensureServerPackages();
  }
  const date = new Date().toISOString();
  const env = { ...environment(), cpuBusyBefore: await cpuBusy() };
  if (env.cpuBusyBefore > 0.1) log(`note: ${(env.cpuBusyBefore * 100).toFixed(0)}% of the CPU is busy with other processes before the run`);
  if (flag('--soak')) {
    const minutes = num('--soak-minutes', 30);
    const { markdown: table, samples } = await runSoak({ minutes, clients: 64 });
    await stopAll();
    const md = `davgate soak, ${date}, ${minutes} minutes, 64 clients, cache 64 MiB under a 192 MiB working set\n\n${table}\n`;
    console.log(md);
    const file = await writeResults('soak-', { date, mode: 'soak', minutes, environment: env, samples }, { name: 'soak-latest.md', text: md });
    log(`soak results written to ${file}`);
    return;
  }
  if (flag('--cluster')) {
    const o = { runs: num('--runs', 3), files: num('--cluster-files', 128), fileBytes: num('--cluster-file-mib', 1) * MiB,
      clients: num('--clients', 16), cacheBytes: num('--cluster-cache-mib', 80) * MiB };
    const { markdown: table, runs } = await runCluster(o);
    await stopAll();
    const md = `davgate cluster benchmark, ${date}, medians of ${o.runs} runs (min–max), loopback, ${cpus().length} cores\n\n${table}\n`;
    console.log(md);
    const file = await writeResults('cluster-', { date, mode: 'cluster', options: o, environment: env, loadavgAtEnd: loadavg(), totalSeconds: elapsedSeconds(), runs }, { name: 'cluster-latest.md', text: md });
    log(`cluster results written to ${file}`);
    return;
  }
  if (flag('--scale')) {
    const { markdown: table, ...result } = await runScale({ runs: settings.runs, quick });
    await stopAll();
    const md = `davgate scale benchmark, ${date}, medians of ${settings.runs} runs, total ${elapsedSeconds().toFixed(0)} s\n\n${table}\n`;
    console.log(md);
    const file = await writeResults('scale-', { date, mode: quick ? 'scale-quick' : 'scale', environment: env, loadavgAtEnd: loadavg(), totalSeconds: elapsedSeconds(), ...result }, { name: 'scale-latest.md', text: md });
    log(`scale results written to ${file} (total ${elapsedSeconds().toFixed(0)} s)`);
    return;
  }
  const { rows, notes } = await runMain(settings);
  await stopAll();
  const load = loadavg();
  if (env.cpuBusyBefore > 0.1) notes.push(`other processes kept ${(env.cpuBusyBefore * 100).toFixed(0)}% of the ${cpus().length} cores busy just before the run: figures are noisier than usual`);
  const total = elapsedSeconds();
  const table = markdown(rows);
  const header = `davgate benchmark, ${date}, ${quick ? 'quick' : 'full'} mode: medians of ${settings.runs} runs, ` +
    `big file ${settings.bigSize / MiB} MiB, ${settings.entries} entries, loopback, total ${total.toFixed(0)} s`;
  const legend = 'davgate/X = davgate\'s median divided by X\'s (for s and MB lower is better, for req/s and MiB/s higher). ' +
    'Cold = a fresh process with an empty cache; nginx/Apache serve the directory directly (no cache), their figures repeat in the cold rows.';
  const md = [header, '', table, '', legend, ...notes.map((n) => `- ${n}`), ''].join('\n');
  console.log(md);
  const file = await writeResults('', { date, mode: quick ? 'quick' : 'full', settings, environment: env, loadavgAtEnd: load, totalSeconds: total, notes, rows: rowsJson(rows) }, { name: 'latest.md', text: md });
  log(`results written to ${file} and bench/results/latest.md (total ${total.toFixed(0)} s)`);
  if (compare) console.log('\n' + compareMarkdown(compareRows(await loadRows(compare), await loadRows(file)), compare));
  if (profiles) {
    await stopAll(); // the profiles are written as the processes exit
    console.log('\n' + await summariseDir(profiles));
  }
}

main()
  .catch(async (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    await stopAll();
  });
