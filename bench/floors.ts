// Reference floors, not libraries: the least a lock on Redis can do per operation.
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { type AdapterConfig, as, closeClient, held, type LockAdapter } from './lock-adapter.js'

const RAW_RELEASE =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

export async function raw(client: Redis, config: AdapterConfig): Promise<LockAdapter> {
  const sha = (await client.script('LOAD', RAW_RELEASE)) as string
  const budget = config.waitBudgetMs ?? 10_000
  type H = { key: string; token: string }
  return {
    name: 'raw',
    acquire: async (key) => {
      const token = randomBytes(16).toString('hex')
      const giveUp = Date.now() + budget
      for (;;) {
        if ((await client.set(key, token, 'PX', config.lifetimeMs, 'NX')) === 'OK')
          return held({ key, token })
        if (Date.now() > giveUp) throw new Error(`raw: ${key} still held after ${budget} ms`)
        await new Promise((r) => setTimeout(r, 10))
      }
    },
    release: async (h) => void (await client.evalsha(sha, 1, as<H>(h).key, as<H>(h).token)),
    isLost: () => false,
    lost: () => 0,
    redisKey: (key) => key,
    close: () => closeClient(client),
  }
}

const RAW_RELEASE_PUBLISH =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return redis.call('PUBLISH', KEYS[1] .. ':rel', '') end return -1"

/** The least a waiter woken by pub/sub can do: the floor for handoff latency. */
export async function rawPubsub(client: Redis, config: AdapterConfig): Promise<LockAdapter> {
  const sha = (await client.script('LOAD', RAW_RELEASE_PUBLISH)) as string
  const sub = client.duplicate()
  sub.on('error', () => {})
  const wakers = new Map<string, Set<() => void>>()
  sub.on('message', (channel: string) => {
    for (const wake of wakers.get(channel) ?? []) wake()
  })
  const subscribed = new Set<string>()
  const budget = config.waitBudgetMs ?? 10_000
  type H = { key: string; token: string }
  return {
    name: 'raw-pubsub',
    acquire: async (key) => {
      const token = randomBytes(16).toString('hex')
      const channel = `${key}:rel`
      const giveUp = Date.now() + budget
      for (;;) {
        // Listen before trying, so a release between the attempt and the wait is not missed.
        let wake = () => {}
        const woken = new Promise<void>((resolve) => {
          wake = resolve
        })
        const set = wakers.get(channel) ?? new Set()
        wakers.set(channel, set.add(wake))
        try {
          if ((await client.set(key, token, 'PX', config.lifetimeMs, 'NX')) === 'OK')
            return held({ key, token })
          if (Date.now() > giveUp) throw new Error(`raw-pubsub: ${key} still held after ${budget} ms`)
          if (!subscribed.has(channel)) {
            subscribed.add(channel)
            await sub.subscribe(channel)
            continue
          }
          const timer = setTimeout(wake, 500)
          await woken
          clearTimeout(timer)
        } finally {
          set.delete(wake)
        }
      }
    },
    release: async (h) => void (await client.evalsha(sha, 1, as<H>(h).key, as<H>(h).token)),
    isLost: () => false,
    lost: () => 0,
    redisKey: (key) => key,
    close: async () => {
      sub.disconnect()
      await closeClient(client)
    },
  }
}
