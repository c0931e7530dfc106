// Every daemon a test starts is registered here by pid and killed when the test process exits,
// however it exits: a failed assertion, an uncaught error, or the runner cancelling the file.
const pids = new Set<number>();
let installed = false;

function killAll(): void {
  for (const pid of pids) {
    // TERM, not KILL: a server like Apache then takes its worker processes down with it.
    try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
  }
  pids.clear();
}

/** Kill `pid` at exit unless the returned function is called first (after a clean stop). */
export function reapOnExit(pid: number | undefined): () => void {
  if (pid === undefined) return () => {};
  pids.add(pid);
  if (!installed) {
    installed = true;
    process.on('exit', killAll);
    // The runner cancels a test file with SIGTERM, whose default action skips 'exit'.
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => { killAll(); process.kill(process.pid, sig); });
    }
  }
  return () => pids.delete(pid);
}
