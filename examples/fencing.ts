/**
 * Fencing tokens: why a lease alone is not enough, and how a resource uses
 * `lock.fence` to turn away a holder that was paused past its lease.
 */
import { Locker } from 'async-redis-lock'

/** Stands in for your database: it remembers the highest fence that wrote. */
class FencedStore {
  #highest = -1n
  value = ''

  write(fence: bigint, value: string): void {
    // In SQL: UPDATE t SET value = $1, fence = $2 WHERE id = $3 AND fence < $2
    if (fence <= this.#highest)
      throw new Error(`stale fence ${fence} (seen ${this.#highest}); write rejected`)
    this.#highest = fence
    this.value = value
  }
}

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0'
const store = new FencedStore()
// fencing: true makes every acquisition carry a fencing token (lock.fence).
const slow = await Locker.fromUrl(url, { lifetimeMs: 200, fencing: true })
const fast = await Locker.fromUrl(url, { fencing: true })

const first = await slow.acquire('invoice:7')
// The first holder stalls (a long GC pause, say) past its lease; its lock expires...
const stallUntil = performance.now() + 300
while (performance.now() < stallUntil) {
  // busy: no timer, no extension can run
}
// ...and another process takes the lock with a larger fence and writes.
const second = await fast.acquire('invoice:7')
store.write(second.fence, 'written by the second holder')

// When the first holder wakes up it can tell (isHeld() is false at once), but a
// write it had already decided to do is caught by the store:
console.log('first holder still holds?', first.isHeld())
try {
  store.write(first.fence, 'late write from the first holder')
} catch (err) {
  console.log((err as Error).message)
}
console.log('store value:', store.value)

await second.release()
await slow.close()
await fast.close()
