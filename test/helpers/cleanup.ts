// Last-resort teardown for child processes started by the helpers. Tests are expected
// to stop what they start, but a thrown assertion, a forgotten `after` or a test-runner
// timeout must never leave redis-server or worker processes running on the machine.

type Cleanup = () => void

const cleanups = new Set<Cleanup>()
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
let installed = false

function runAll(): void {
  for (const cleanup of [...cleanups]) {
    cleanups.delete(cleanup)
    try {
      cleanup()
    } catch {
      // Exit handlers must not throw: the remaining processes still need killing.
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  runAll()
  // A listener disables Node's default "terminate on signal" behaviour. When nobody else
  // (e.g. the test runner) handles the signal, re-raise it so the process still dies.
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onSignal)
    process.kill(process.pid, signal)
  }
}

function install(): void {
  if (installed) return
  installed = true
  // 'exit' only allows synchronous work, which is why callbacks use process.kill + rmSync.
  process.on('exit', runAll)
  for (const signal of SIGNALS) process.on(signal, onSignal)
}

/** Registers a synchronous callback run at process exit; returns a function that unregisters it. */
export function onProcessExit(cleanup: Cleanup): () => void {
  install()
  cleanups.add(cleanup)
  return () => {
    cleanups.delete(cleanup)
  }
}

/** SIGKILLs a pid, ignoring "no such process" so it is safe to call after the child exited. */
export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal)
  } catch {
    // ESRCH: already gone.
  }
}
