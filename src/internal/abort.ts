/** Resolves after `ms` or when `signal` aborts, whichever comes first; never rejects. */
export function abortableSleep(ms: number, signal: AbortSignal | undefined, ref = true): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    if (!ref) timer.unref()
    signal?.addEventListener('abort', done, { once: true })
  })
}
