// How much CPU processes other than the bench used while a scenario ran: machine-wide
// busy time from /proc/stat minus our own (this process, its exited workers, redis).
// The machine is shared, so a result measured next to a busy neighbour is flagged.
import { readFileSync } from 'node:fs'

function machineBusyTicks(): number {
  const fields =
    readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? []
  const total = fields.reduce((a, b) => a + b, 0)
  // idle + iowait are the only "not busy" columns.
  return total - (fields[3] ?? 0) - (fields[4] ?? 0)
}

/** utime + stime (+ reaped children's) of a process, in clock ticks. */
function processTicks(pid: number | 'self', withChildren: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the parenthesised command name; utime is field 14 overall.
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number)
    const own = (f[11] ?? 0) + (f[12] ?? 0)
    return withChildren ? own + (f[13] ?? 0) + (f[14] ?? 0) : own
  } catch {
    return 0
  }
}

/**
 * Starts measuring; the returned function gives the other processes' average CPU
 * use in cores since then (NaN where /proc is not available). Call it once every
 * worker of the interval has exited, so their time has been reaped into ours.
 */
export function watchInterference(redisPid: number): () => number {
  try {
    const ours = () => processTicks('self', true) + processTicks(redisPid, false)
    const busy0 = machineBusyTicks()
    const ours0 = ours()
    const t0 = performance.now()
    return () => {
      const seconds = (performance.now() - t0) / 1000
      // /proc counts in USER_HZ, which is 100 on Linux.
      const other = machineBusyTicks() - busy0 - (ours() - ours0)
      return seconds > 0 ? Math.max(0, other / 100 / seconds) : Number.NaN
    }
  } catch {
    return () => Number.NaN
  }
}
