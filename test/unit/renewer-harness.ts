import assert from 'node:assert/strict'
import { Backend } from '../../src/backends/backend.js'
import { LockLostError, type LockLostReason } from '../../src/errors.js'
import { Lease } from '../../src/internal/lease.js'
import { resolveLockOptions } from '../../src/options.js'
import { Renewer } from '../../src/renewer.js'
import { type CallHandler, extendReply, FakeAdapter } from '../helpers/fake-adapter.js'
import { FakeClock } from '../helpers/fake-clock.js'

/**
 * Shared setup of the Renewer unit tests: a Renewer over a Backend over a
 * FakeAdapter, on a FakeClock starting at 0.
 */

/** Lifetime used unless a test says otherwise: interval 5000, drift 102, batch window 1000. */
export const LIFETIME = 10_000
export const DRIFT = 102

const cleanups: (() => void)[] = []

/** Pass to `afterEach`: stops every Renewer and ends every hung call of the test. */
export function runCleanups(): void {
  for (const fn of cleanups.splice(0)) fn()
}

export function setup() {
  const clock = new FakeClock(0)
  const adapter = new FakeAdapter()
  const lost: Lease[] = []
  /** Whether the lease's signal had already aborted when onLost ran for it. */
  const abortedBeforeOnLost: boolean[] = []
  /** Leases handed to onFirstExtension, with the clock time. */
  const watched: [Lease, number][] = []
  const renewer = new Renewer(
    new Backend(adapter),
    clock,
    (lease) => {
      lost.push(lease)
      abortedBeforeOnLost.push(lease.signal.aborted)
    },
    (lease) => {
      watched.push([lease, clock.now()])
      lease.unwatched = undefined
    },
  )
  /** Clock time of each script call. */
  const callTimes: number[] = []
  let answer: CallHandler = extendReply()
  adapter.handler = (call) => {
    callTimes.push(clock.now())
    return answer(call)
  }
  cleanups.push(() => {
    renewer.stop()
    adapter.settleHung()
  })
  return {
    clock,
    adapter,
    renewer,
    lost,
    watched,
    abortedBeforeOnLost,
    callTimes,
    answer(handler: CallHandler) {
      answer = handler
    },
  }
}

let tokens = 0

export function newLease(clock: FakeClock, lifetimeMs = LIFETIME, keys?: string[]): Lease {
  const n = ++tokens
  const lease = new Lease(
    keys ?? [`key${n}`],
    `token${n}`,
    BigInt(n),
    resolveLockOptions([{ lifetimeMs }]),
    clock.now(),
  )
  // Create the (lazy) signal up front, as a holder reading lock.signal would.
  void lease.signal
  return lease
}

export function assertLost(lease: Lease, reason: LockLostReason): LockLostError {
  assert.equal(lease.state, 'lost')
  assert.equal(lease.signal.aborted, true)
  const err = lease.signal.reason
  assert.ok(err instanceof LockLostError, `signal reason is a LockLostError: ${String(err)}`)
  assert.equal(err.code, 'ERR_LOCK_LOST')
  assert.equal(err.reason, reason)
  assert.deepEqual(err.keys, lease.keys)
  assert.equal(lease.lostError, err)
  return err
}

export function assertHeld(renewer: Renewer, lease: Lease): void {
  assert.equal(lease.state, 'held')
  assert.equal(lease.signal.aborted, false)
  assert.equal(renewer.check(lease), true)
}
