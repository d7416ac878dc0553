import assert from 'node:assert/strict'
import { SingleNodeBackend } from '../../src/backends/single-node.js'
import { LockLostError, type LockLostReason } from '../../src/errors.js'
import { type Lease, Leases } from '../../src/leases.js'
import { LockHandle } from '../../src/lock.js'
import { resolveLockOptions } from '../../src/options.js'
import { type CallHandler, extendReply, FakeAdapter } from '../helpers/fake-adapter.js'
import { FakeClock } from '../helpers/fake-clock.js'

/**
 * Shared setup of the lease table's unit tests: a Leases over a single-node backend
 * over a FakeAdapter, on a FakeClock starting at 0.
 */

/** Lifetime used unless a test says otherwise: interval 5000, drift 102, batch window 1000. */
export const LIFETIME = 10_000
export const DRIFT = 102

/**
 * A lease as these white-box tests read it: its private state, read through a cast
 * (never written), plus its signal.
 */
export interface TestLease extends Lease {
  readonly state: 'held' | 'released' | 'lost'
  readonly deadline: number
  readonly nextDueAt: number
  readonly inFlight: Promise<void> | undefined
  readonly lastError: unknown
  readonly lostError: LockLostError | undefined
  readonly unwatched: object | undefined
  readonly signal: AbortSignal
}

const cleanups: (() => void)[] = []
const tables = new Map<FakeClock, Leases>()

/** Pass to `afterEach`: stops every lease table and ends every hung call of the test. */
export function runCleanups(): void {
  for (const fn of cleanups.splice(0)) fn()
}

/** The old Renewer's surface, over the lease table. */
export interface RenewerView {
  /** A no-op: {@link newLease} already added the lease. Kept so the tests read in order. */
  add(lease: TestLease): void
  check(lease: Lease): boolean
  extendNow(lease: Lease): Promise<void>
  /** Releases the lease (the table stops extending it). */
  remove(lease: Lease): void
  stop(): void
  readonly size: number
  readonly batches: number
}

export function setup() {
  const clock = new FakeClock(0)
  const adapter = new FakeAdapter()
  const lost: TestLease[] = []
  /** Whether the lease's signal had already aborted when its clean-up ran. */
  const abortedBeforeOnLost: boolean[] = []
  let leases: Leases | undefined
  leases = new Leases(new SingleNodeBackend(adapter), clock, {
    release: async () => true,
    cleanUp: (lease) => {
      lost.push(lease as TestLease)
      abortedBeforeOnLost.push((leases as Leases).signal(lease).aborted)
    },
  })
  const table = leases
  tables.set(clock, table)
  const renewer: RenewerView = {
    add: (lease) => assert.equal(lease.state, 'held'),
    check: (lease) => table.isHeld(lease),
    extendNow: (lease) => table.extend(lease),
    remove: (lease) => void table.release(lease),
    stop: () => table.closeAll(),
    get size() {
      return table.size
    },
    get batches() {
      return table.batches
    },
  }
  /** Clock time of each script call. */
  const callTimes: number[] = []
  let answer: CallHandler = extendReply()
  adapter.handler = (call) => {
    callTimes.push(clock.now())
    return answer(call)
  }
  cleanups.push(() => {
    table.closeAll()
    tables.delete(clock)
    adapter.settleHung()
  })
  return {
    clock,
    adapter,
    renewer,
    leases: table,
    lost,
    abortedBeforeOnLost,
    callTimes,
    answer(handler: CallHandler) {
      answer = handler
    },
  }
}

let tokens = 0

/** A lease acquired now (by the clock) and held by the clock's table. */
export function newLease(clock: FakeClock, lifetimeMs = LIFETIME, keys?: string[]): TestLease {
  const table = tables.get(clock)
  if (!table) throw new Error('newLease: call setup() first for this clock')
  const n = ++tokens
  const lock = table.add(
    keys ?? [`key${n}`],
    `token${n}`,
    BigInt(n),
    resolveLockOptions([{ lifetimeMs }]),
    clock.now(),
  )
  const lease = LockHandle.leaseOf(lock)
  Object.defineProperty(lease, 'signal', { configurable: true, get: () => table.signal(lease) })
  // Create the (lazy) signal up front, as a holder reading lock.signal would.
  void table.signal(lease)
  return lease as TestLease
}

export function assertLost(lease: TestLease, reason: LockLostReason): LockLostError {
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

export function assertHeld(renewer: RenewerView, lease: TestLease): void {
  assert.equal(lease.state, 'held')
  assert.equal(lease.signal.aborted, false)
  assert.equal(renewer.check(lease), true)
}
