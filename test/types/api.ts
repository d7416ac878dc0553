/**
 * Type tests of the public API: compiled by `npm run typecheck`, never run. A
 * line marked @ts-expect-error that stops being an error fails the build.
 */
import type { GlideClient, GlideClusterClient } from '@valkey/valkey-glide'
import type { Cluster, Redis } from 'ioredis'
import type { RedisClientType, RedisClusterType, RedisSentinelType } from 'redis'
import {
  type AcquireOptions,
  type AcquireSuccessMessage,
  type AnyLockError,
  diagnosticsChannels,
  isLockError,
  type Lock,
  LockError,
  type LockErrorCode,
  Locker,
  LockLostError,
  type LockLostReason,
  type NodeOutcome,
} from '../../src/index.js'

declare const client: Redis
declare const client2: Redis
declare const ioCluster: Cluster
declare const nodeRedis: RedisClientType
declare const nodeCluster: RedisClusterType
declare const sentinel: RedisSentinelType
declare const glide: GlideClient
declare const glideCluster: GlideClusterClient
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
      expectType<'expired' | 'deleted' | 'stolen' | 'unreachable' | 'abandoned' | 'closed'>(reason)
    }
  }
  try {
    await locker.acquire('k')
  } catch (err) {
    // The errors are a union discriminated by code: each case sees its own fields.
    if (isLockError(err)) {
      switch (err.code) {
        case 'ERR_LOCK_ACQUIRE_TIMEOUT':
          expectType<number>(err.waitedMs)
          expectType<number>(err.attempts)
          break
        case 'ERR_LOCK_LOST':
          expectType<LockLostReason>(err.reason)
          break
        case 'ERR_LOCK_BACKEND':
          expectType<string>(err.operation)
          // @ts-expect-error a backend error has no waitedMs
          expectType<number>(err.waitedMs)
          break
        case 'ERR_LOCK_CROSS_SLOT':
          expectType<number | undefined>(err.slots[0]?.slot)
          break
      }
    }
    if (isLockError(err, 'ERR_LOCK_QUORUM')) expectType<readonly NodeOutcome[]>(err.outcomes)
    const any = err as AnyLockError
    if (any.code === 'ERR_LOCK_INVALID_ARGUMENT') expectType<string>(any.argument)
  }
  expectType<number>(locker.stats().lostByReason.stolen)
  expectType<number>(locker.stats().lostByReason.deleted)
  // @ts-expect-error a Locker needs a Redis client, not any object
  new Locker({})
  // @ts-expect-error nor a URL: use Locker.fromUrl
  new Locker('redis://127.0.0.1:6379')
  // @ts-expect-error nor an array of anything
  new Locker([{}])
  new Locker([client, client2])
  new Locker(nodeRedis)
  new Locker(nodeCluster)
  new Locker(ioCluster)
  new Locker(glide)
  new Locker(glideCluster)
  new Locker(sentinel)
  expectType<'async-redis-lock:acquire:success'>(diagnosticsChannels.acquireSuccess)
  // @ts-expect-error the channel names are constants
  diagnosticsChannels.lost = 'x'
  const success: AcquireSuccessMessage = {
    keys: ['k'],
    kind: 'semaphore',
    limit: 3,
    fence: 1n,
    waitedMs: 0,
    attempts: 1,
  }
  expectType<'exclusive' | 'shared' | 'semaphore'>(success.kind)
  expectType<number | null>(success.limit)
  // @ts-expect-error payloads never carry the owner token
  expectType<string>(success.token)
  await locker.close()
}
