import type { Clock } from '../../src/internal/clock.js'
import { LUA_RELEASE_CHANNEL } from '../../src/internal/keys.js'
import type { LockerInternals } from '../../src/internal/testing.js'
import { ACQUIRE, ACQUIRE_HOLDER } from '../../src/scripts/index.js'

/**
 * The lock variants a soak worker can run. `correct` is the library as shipped; the
 * others are the negative controls, each broken in exactly one way through the
 * library's own test seams, so the checker has to find that one defect.
 */
export type Variant =
  | 'correct'
  | 'plain-del'
  | 'wall-clock'
  | 'skip-validity'
  | 'sem-over-limit'
  | 'writer-beside-reader'

export const VARIANTS: readonly Variant[] = [
  'correct',
  'plain-del',
  'wall-clock',
  'skip-validity',
  'sem-over-limit',
  'writer-beside-reader',
]

/**
 * How a worker holds its keys: always exclusive; shared with probability
 * `sharedShare`, else exclusive (readers and writers on the same keys); or always a
 * permit of a semaphore with `limit`.
 */
export type HoldSpec =
  | { kind: 'exclusive' }
  | { kind: 'rw'; sharedShare: number }
  | { kind: 'semaphore'; limit: number }

/**
 * The library's own script with exactly one fragment changed. Throws when the fragment
 * is not found exactly once: a script rewritten since this control was made must fail
 * the soak loudly, not quietly turn the control into the correct variant.
 */
function edited(name: string, source: string, from: string, to: string): string {
  const found = source.split(from).length - 1
  if (found !== 1) {
    throw new Error(
      `negative control ${name}: expected "${from}" exactly once in the library's script, found it ${found} times; update test/soak/variants.ts`,
    )
  }
  return source.replace(from, to)
}

/**
 * ACQUIRE_HOLDER with an off-by-one limit: a semaphore at its limit still admits one
 * more holder (`holders > limit` instead of `holders >= limit`, and the arrival queue
 * hands out one permit more than are free), so `limit + 1` permits can be held at once.
 * Same KEYS, ARGV and replies.
 */
const overLimitAcquireHolder = (): string =>
  edited(
    'sem-over-limit',
    edited('sem-over-limit', ACQUIRE_HOLDER.source, 'holders >= limit', 'holders > limit'),
    '(rank or #live) >= limit - holders',
    '(rank or #live) >= limit + 1 - holders',
  )

/**
 * ACQUIRE (the exclusive acquisition) blind to shared holders: a key held by readers
 * is treated like one whose readers all expired, so the writer takes it beside them.
 * The readers' holds live on until their next extension finds the key taken. Same
 * KEYS, ARGV and replies.
 */
const writerIgnoresReaders = (): string =>
  edited('writer-beside-reader', ACQUIRE.source, "if kind == 'x' or holders > 0 then", "if kind == 'x' then")

/**
 * RELEASE without the owner check: deletes the keys whoever holds them. Same KEYS,
 * ARGV and a reply the real script may give (`{deleted, receivers}`), so the Locker
 * cannot tell the difference; a late release of an expired lease then deletes the
 * next holder's lock.
 */
const PLAIN_DEL_RELEASE = `${LUA_RELEASE_CHANNEL}
local heard = 0
for i = 1, #KEYS do
  heard = heard + redis.call('PUBLISH', releaseChannel(KEYS[i]), ARGV[2])
end
return {redis.call('DEL', unpack(KEYS)), heard}
`

/**
 * Deadlines on the wall clock. Under a backwards step of the wall clock every
 * deadline moves into the future: the lock stops extending (its timer now waits an
 * hour) and keeps saying it is held while Redis lets the key expire.
 */
const wallClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.min(Math.max(0, ms), 2_147_483_647))
    t.unref()
    return t
  },
  clearTimer(handle) {
    clearTimeout(handle as NodeJS.Timeout)
  },
}

export function internalsFor(variant: Variant): LockerInternals {
  switch (variant) {
    case 'correct':
      return {}
    case 'plain-del':
      return { scripts: { release: PLAIN_DEL_RELEASE } }
    case 'wall-clock':
      return { clock: wallClock }
    case 'skip-validity':
      return { skipValidityCheck: true }
    case 'sem-over-limit':
      return { scripts: { acquireHolder: overLimitAcquireHolder() } }
    case 'writer-beside-reader':
      return { scripts: { acquire: writerIgnoresReaders() } }
  }
}
