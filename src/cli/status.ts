/**
 * The live "waiting for KEY" line shown on a terminal while `run` waits.
 *
 * @module
 */
import type { Locker } from '../locker.js'
import type { KeyInspection } from '../types.js'

/** Shown only after this long, so quick acquisitions print nothing. */
const SHOW_AFTER_MS = 1000
const REFRESH_MS = 250

/** A running status line; `stop()` erases it. */
export interface StatusLine {
  stop(): void
}

/**
 * Starts refreshing a status line on stderr if stderr is a terminal; otherwise
 * does nothing, so logs and pipes never get carriage returns and escape codes.
 */
export function startStatusLine(locker: Locker, key: string): StatusLine | undefined {
  const stderr = process.stderr
  if (!stderr.isTTY) return undefined
  const started = performance.now()
  let shown = false
  let busy = false
  let stopped = false
  const draw = async (): Promise<void> => {
    if (busy || performance.now() - started < SHOW_AFTER_MS) return
    // One inspection at a time: a slow Redis must not pile up requests.
    busy = true
    try {
      const state = await locker.inspect(key)
      if (stopped) return
      const what = heldText(state)
      const waited = ((performance.now() - started) / 1000).toFixed(0)
      stderr.write(`\r\x1b[Kwaiting for ${key} — ${what} (waited ${waited} s)`)
      shown = true
    } catch {
      // The status line is cosmetic; the acquisition reports real failures.
    } finally {
      busy = false
    }
  }
  const timer = setInterval(() => void draw(), REFRESH_MS)
  timer.unref()
  return {
    stop() {
      stopped = true
      clearInterval(timer)
      if (shown) stderr.write('\r\x1b[K')
    },
  }
}

/** The state of the key as the status line says it: who holds it and the longest lease left. */
export function heldText(state: KeyInspection): string {
  if (!state.isHeld) return 'free, trying'
  const left = state.remainingMs === null ? '' : `, ${(state.remainingMs / 1000).toFixed(1)} s left`
  const n = state.holders.length
  if (state.kind === 'semaphore') return `${n} of ${state.limit} permits held${left}`
  if (state.kind === 'shared') return `held by ${n} shared holder${n === 1 ? '' : 's'}${left}`
  return `held${left}`
}
