import { Locker } from 'async-redis-lock'

const locker = await Locker.fromUrl(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0')

{
  // `await using` releases the lock when the block ends, however it ends:
  // the JavaScript counterpart of Rust's Drop.
  await using lock = await locker.acquire('lock_key')
  console.log('working under', lock.keys)
}

// withLock does the same for a function, and hands it the loss signal.
const total = await locker.withLock('lock_key', async (signal) => {
  signal.throwIfAborted()
  return 42
})
console.log('result', total)
await locker.close()
