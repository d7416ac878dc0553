/**
 * Shared locks (readers/writer): any number of shared holders of a key at once, or
 * one exclusive holder (a plain acquire: the writer). Writers are not starved: once
 * a writer waits, new readers wait behind it.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Locker } from 'async-redis-lock'

const locker = await Locker.fromUrl(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0')

{
  // A reader: `shared: true`. Its lease is extended in the background like any
  // lock's, and `await using` releases it at the end of the block.
  await using reader = await locker.acquire('doc:7', { shared: true })
  // Others can read at the same time; each holder has its own lease and signal.
  await using other = await locker.acquire('doc:7', { shared: true })
  const seen = await locker.inspect('doc:7')
  console.log('held as', seen.kind, 'by', seen.holders.length, 'holders') // shared by 2
  console.log('both held:', reader.isHeld() && other.isHeld())
}

// withLock hands the work the loss signal: it aborts if the hold is lost.
const text = await locker.withLock(
  'doc:7',
  async (signal) => {
    signal.throwIfAborted()
    return 'contents of doc 7'
  },
  { shared: true },
)
console.log('read:', text)

// The writer is a plain acquire (exclusive). It waits until the readers are gone...
const r1 = await locker.acquire('doc:7', { shared: true })
const r2 = await locker.acquire('doc:7', { shared: true })
const writing = locker.acquire('doc:7', { retryTimeoutMs: 10_000 })
while (locker.stats().waiting === 0) await sleep(5) // (only to be sure the writer waits)

// ...and while it waits, new readers do not get in (writer preference).
const late = await locker.tryAcquire('doc:7', { shared: true })
console.log('a new reader got in while the writer waits:', late !== null) // false

// The last reader out wakes the writer: no polling.
await r1.release()
await r2.release()
const writer = await writing
console.log('the writer holds it:', writer.isHeld(), (await locker.inspect('doc:7')).kind) // exclusive

// Readers arriving now wait for the writer; its release admits them all at once.
const waiting = [1, 2, 3].map(() => locker.acquire('doc:7', { shared: true, retryTimeoutMs: 10_000 }))
await sleep(50)
await writer.release()
const readers = await Promise.all(waiting)
console.log('readers after the writer:', (await locker.inspect('doc:7')).holders.length) // 3
for (const r of readers) await r.release()

await locker.close()
