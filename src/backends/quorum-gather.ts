import type { NodeOutcome } from '../errors.js'

/** What one node did with one request of a quorum operation. */
export type Settled<T> =
  | { readonly node: number; readonly ok: true; readonly value: T }
  | { readonly node: number; readonly ok: false; readonly error: unknown; readonly timedOut: boolean }

/**
 * Runs one request per node in parallel. After each settles, `decide` gets what
 * has settled and how many are pending; its first non-undefined result (or throw)
 * settles the whole call, so a hung node never delays a decided outcome. With
 * nothing pending `decide` must decide. Late settlements are ignored.
 */
export function gather<T, R>(
  calls: readonly Promise<T>[],
  nodeTimeout: number,
  decide: (settled: readonly Settled<T>[], pending: number) => R | undefined,
): Promise<R> {
  const started = performance.now()
  return new Promise<R>((resolve, reject) => {
    const settled: Settled<T>[] = []
    let done = false
    const step = (s: Settled<T>) => {
      if (done) return
      settled.push(s)
      try {
        const r = decide(settled, calls.length - settled.length)
        if (r !== undefined) {
          done = true
          resolve(r)
        }
      } catch (err) {
        done = true
        reject(err)
      }
    }
    for (const [node, call] of calls.entries()) {
      call.then(
        (value) => step({ node, ok: true, value }),
        // The node's own watchdog rejects a hung call; one that failed only at about
        // the deadline was a timeout, anything earlier an error.
        (error: unknown) =>
          step({ node, ok: false, error, timedOut: performance.now() - started >= nodeTimeout - 1 }),
      )
    }
  })
}

/** A failed node's outcome: `timeout` when it failed at about its deadline, else `error`. */
export function failedOutcome(s: Settled<unknown> & { ok: false }): NodeOutcome {
  return { node: s.node, outcome: s.timedOut ? 'timeout' : 'error', error: s.error }
}

/** One line per node for error messages, in node order. */
export function summary<T>(
  settled: readonly Settled<T>[],
  answered: (value: T) => string = () => 'answered',
): string {
  return [...settled]
    .sort((a, b) => a.node - b.node)
    .map((s) => {
      if (s.ok) return `node ${s.node} ${answered(s.value)}`
      const text = s.error instanceof Error ? s.error.message : String(s.error)
      return `node ${s.node} ${s.timedOut ? 'timed out' : 'failed'} (${text})`
    })
    .join('; ')
}
