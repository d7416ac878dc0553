import { Locker } from 'async-redis-lock'

// Defaults for every lock of this Locker...
const locker = await Locker.fromUrl(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0', {
  prefix: 'myapp:locks:',
  lifetimeMs: 5000, // lease length: how long the lock survives a crashed holder
})

// ...and per call.
const lock = await locker.acquire('lock_key', {
  extendIntervalMs: 3000, // extend every 3 s; must be shorter than lifetimeMs
  retryIntervalMs: 1000, // poll at least this often while waiting (release wakes us sooner)
  retryTimeoutMs: 3000, // give up after 3 s; null waits forever, 0 tries once
  signal: AbortSignal.timeout(10_000), // or cancel the wait yourself
})
console.log('held', lock.keys[0])
await lock.release()
await locker.close()
