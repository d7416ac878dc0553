import type { Clock } from '../../src/internal/clock.js'
import type { LockerInternals } from '../../src/internal/testing.js'

/**
 * The lock variants a soak worker can run. `correct` is the library as shipped; the
 * others are the negative controls, each broken in exactly one way through the
 * library's own test seams, so the checker has to find that one defect.
 */
export type Variant = 'correct' | 'plain-del' | 'wall-clock' | 'skip-validity'

export const VARIANTS: readonly Variant[] = ['correct', 'plain-del', 'wall-clock', 'skip-validity']

/**
 * RELEASE without the owner check: deletes the keys whoever holds them. Same KEYS,
 * ARGV and reply shape `{deleted, receivers}` as the real script, so the Locker
 * cannot tell the difference; a late release of an expired lease then deletes the
 * next holder's lock.
 */
const PLAIN_DEL_RELEASE = `
local heard = 0
for i = 1, #KEYS do
  heard = heard + redis.call('PUBLISH', ARGV[2 + i], ARGV[2])
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
  }
}
