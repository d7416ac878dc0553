/**
 * `npm run demo`: several processes contend for one lock; one of them is killed
 * while it holds the lock, and the lock frees itself when its lease runs out.
 * Uses REDIS_URL if set, otherwise starts a throwaway redis-server.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Locker } from 'async-redis-lock'
import { redisForExample } from './throwaway-redis.js'

const KEY = 'demo:nightly-report'
const LIFETIME_MS = 1500
const WORKERS = 4
const ROUNDS = 2

if (process.argv[2] === 'worker') await worker(Number(process.argv[3]), process.argv[4] as string)
else await main()

async function main(): Promise<void> {
  const redis = await redisForExample()
  const t0 = performance.now()
  const stamp = () => `${((performance.now() - t0) / 1000).toFixed(2).padStart(6)}s`
  console.log(`redis: ${redis.url}`)
  console.log(`${WORKERS} processes want "${KEY}" (lease ${LIFETIME_MS} ms, extended in the background)\n`)
  let victimKilledAt = 0
  let victim: number | undefined
  const children = Array.from({ length: WORKERS }, (_, i) => {
    const child = fork(fileURLToPath(import.meta.url), ['worker', String(i + 1), redis.url], {
      execArgv: process.execArgv,
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    })
    child.on('message', (m: { event: string; fence?: string; waitedMs?: number }) => {
      const who = `worker ${i + 1} (pid ${child.pid})`
      if (m.event === 'acquired') {
        const after = victimKilledAt
          ? `, ${Math.round(performance.now() - victimKilledAt)} ms after the kill`
          : ''
        console.log(`${stamp()}  ${who} acquired, fence ${m.fence}, waited ${m.waitedMs} ms${after}`)
        victimKilledAt = 0
        // Kill the first worker to get the lock in the middle of its critical
        // section, while all the others still want it.
        if (victim === undefined) {
          victim = i
          setTimeout(() => {
            console.log(`${stamp()}  killing ${who} with SIGKILL while it holds the lock`)
            child.kill('SIGKILL')
            victimKilledAt = performance.now()
          }, 200)
        }
      } else if (m.event === 'released') {
        console.log(`${stamp()}  ${who} released`)
      }
    })
    return new Promise<void>((resolve) => child.once('exit', () => resolve()))
  })
  await Promise.all(children)
  const locker = await Locker.fromUrl(redis.url)
  const state = await locker.inspect(KEY)
  console.log(`\nall done; "${KEY}" is ${state.isHeld ? 'still held' : 'free'}, last fence ${state.fence}`)
  await locker.close()
  redis.stop()
}

async function worker(id: number, url: string): Promise<void> {
  const send = (m: object) => process.send?.(m)
  const locker = await Locker.fromUrl(url, { lifetimeMs: LIFETIME_MS, retryTimeoutMs: null })
  for (let round = 0; round < ROUNDS; round++) {
    const asked = performance.now()
    await using lock = await locker.acquire(KEY)
    send({ event: 'acquired', fence: String(lock.fence), waitedMs: Math.round(performance.now() - asked) })
    await new Promise((r) => setTimeout(r, 300 + id * 50)) // the critical section
    await lock.release()
    send({ event: 'released' })
  }
  await locker.close()
  process.disconnect?.()
}
