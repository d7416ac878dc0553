/**
 * Type tests of the public API: compiled by `npm run typecheck`, never run. A
 * line marked @ts-expect-error that stops being an error fails the build.
 */
import type { Redis } from 'ioredis'
import {
  type AcquireOptions,
  type AcquireSuccessMessage,
  diagnosticsChannels,
  type Lock,
  LockError,
  type LockErrorCode,
  Locker,
  LockLostError,
  type LockLostReason,
} from '../../src/index.js'

declare const client: Redis
declare function expectType<T>(value: T): void

export async function usage(): Promise<void> {
  const locker = new Locker(client, { prefix: 'app:', lifetimeMs: 5000 })
  const lock: Lock = await locker.acquire('k')
  expectType<readonly string[]>(lock.keys)
  expectType<string>(lock.token)
  expectType<bigint>(lock.fence)
  expectType<bigint>((await locker.acquire('f', { fencing: true })).fence)
  expectType<AbortSignal>(lock.signal)
  expectType<boolean>(lock.isHeld())
  expectType<Promise<void>>(lock.extend())
  expectType<Promise<boolean>>(lock.release())
  expectType<Lock | null>(await locker.tryAcquire(['a', 'b']))
  expectType<number>(await locker.withLock('k', async (signal, l) => (signal.aborted ? 0 : l.keys.length)))
  {
    await using scoped = await locker.acquire('k')
    expectType<Lock>(scoped)
  }
  const options: AcquireOptions = { retryTimeoutMs: null, signal: AbortSignal.timeout(10) }
  await locker.acquire('k', options)
  // @ts-expect-error durations are numbers
  await locker.acquire('k', { lifetimeMs: '5s' })
  // @ts-expect-error unknown options are rejected by the types too
  await locker.acquire('k', { lifetime: 5 })
  // @ts-expect-error keys are strings
  await locker.acquire(42)
  // @ts-expect-error a Lock has no public constructor-made twin: it comes from a Locker
  const forged: Lock = { keys: [] }
  expectType<Lock>(forged)
  try {
    await locker.acquire('k')
  } catch (err) {
    if (err instanceof LockError) {
      const code: LockErrorCode = err.code
      expectType<string>(code)
    }
    if (err instanceof LockLostError) {
      const reason: LockLostReason = err.reason
      expectType<'expired' | 'stolen' | 'unreachable' | 'abandoned' | 'closed'>(reason)
    }
  }
  expectType<number>(locker.stats().lostByReason.stolen)
  expectType<'async-redis-lock:acquire:success'>(diagnosticsChannels.acquireSuccess)
  // @ts-expect-error the channel names are constants
  diagnosticsChannels.lost = 'x'
  const success: AcquireSuccessMessage = { keys: ['k'], fence: 1n, waitedMs: 0, attempts: 1 }
  // @ts-expect-error payloads never carry the owner token
  expectType<string>(success.token)
  await locker.close()
}
