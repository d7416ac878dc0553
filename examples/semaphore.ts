/**
 * Semaphores: at most `limit` holders of a key at once across every process, each
 * holder with its own lease, so a crashed holder's permit frees itself.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { isLockError, Locker } from 'async-redis-lock'

const locker = await Locker.fromUrl(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0')

// At most 2 concurrent calls to a rate-limited API, fleet-wide: every process
// that uses the key 'api:geocoder' with limit 2 shares the same 2 permits.
let inFlight = 0
let most = 0
async function callApi(i: number, signal: AbortSignal): Promise<string> {
  inFlight++
  most = Math.max(most, inFlight)
  await sleep(30, undefined, { signal }) // the call; the signal aborts if the permit is lost
  inFlight--
  return `result ${i}`
}

const results = await Promise.all(
  [1, 2, 3, 4, 5, 6].map((i) =>
    // A released permit wakes one waiter (no polling).
    locker.withLock('api:geocoder', (signal) => callApi(i, signal), { limit: 2, retryTimeoutMs: 10_000 }),
  ),
)
console.log(results.length, 'calls, at most', most, 'at once') // 6 calls, at most 2 at once

{
  // A permit with `await using`: released at the end of the block.
  await using permit = await locker.acquire('jobs', { limit: 5 })
  const seen = await locker.inspect('jobs')
  // kind 'semaphore', limit 5, one holder with its remaining lease (tokens are never shown)
  console.log(seen.kind, seen.limit, seen.holders, permit.isHeld())

  // One key, one kind: while 'jobs' has holders, another limit (or a plain or
  // shared acquire) is rejected, and nothing changes.
  try {
    await locker.acquire('jobs', { limit: 3 })
  } catch (err) {
    if (!isLockError(err, 'ERR_LOCK_INVALID_ARGUMENT')) throw err
    console.log(err.message) // key "jobs" is held as a semaphore with limit 5; ...
  }
}

console.log(locker.stats().acquiredByKind) // { exclusive: 0, shared: 0, semaphore: 7 }
await locker.close()
