import { Locker } from 'async-redis-lock'

const locker = await Locker.fromUrl(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0')

// Acquire the lock. While it is held, a background timer extends its lease.
const lock = await locker.acquire('lock_key')

// At this point the lock is held and safe to work under. If it is ever lost
// (Redis unreachable, key deleted), lock.signal aborts before the lease runs out.
console.log('held:', lock.isHeld(), 'remaining ms:', lock.remainingMs())

// Release explicitly (or let `await using` do it, see scoped.ts).
await lock.release()
await locker.close()
