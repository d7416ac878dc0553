// One adapter per library behind the same small interface, each on its own ioredis
// client and at the library's default settings except the lease length (and, where
// a scenario needs waiters to keep waiting, the retry budget — never the retry delay).
import { createRequire } from 'node:module'
import { Redlock as SesameRedlock } from '@sesamecare-oss/redlock'
import { Locker } from 'async-redis-lock'
import type { Redis } from 'ioredis'
import { Mutex, Semaphore } from 'redis-semaphore'
import { createLock, IoredisAdapter, type Lock as UniversalLock } from 'redlock-universal'
import { raw, rawPubsub } from './floors.js'
import {
  type AdapterConfig,
  as,
  closeClient,
  connectClient,
  type Held,
  type Hold,
  held,
  isExclusive,
  type LibraryName,
  type LockAdapter,
} from './lock-adapter.js'

export {
  type AdapterConfig,
  connectClient,
  FLOORS,
  type Held,
  type Hold,
  isPeer,
  LIBRARIES,
  type LibraryName,
  type LockAdapter,
  type Variant,
} from './lock-adapter.js'

/** How each library is driven, for the report. */
export const LIBRARY_NOTES: Record<LibraryName, string> = {
  'async-redis-lock': '`new Locker(ioredis)`, `acquire`/`release`; lease extended by its batched renewer',
  raw: 'floor: `SET key token NX PX` + compare-and-delete `EVALSHA`; no extension, no waiting beyond a 10 ms poll',
  'raw-pubsub':
    'handoff floor: `SET NX PX`; on failure wait for a message on the key’s channel (or 500 ms) and retry; release = compare-and-delete + `PUBLISH` in one `EVALSHA`',
  redlock4: '`redlock.lock`/`unlock` (defaults: retryCount 10, retryDelay 200±100 ms); no auto-extension',
  redlock5:
    '`redlock.using()` (the only way to get auto-extension; defaults: retryCount 10, retryDelay 200±100 ms, extends 500 ms before expiry)',
  'redis-semaphore':
    '`new Mutex(client, key, { lockTimeout, onLockLost })` per acquisition (defaults: retryInterval 10 ms, acquireTimeout 10 s, refresh every 0.8 × lockTimeout)',
  'redlock-universal':
    '`createLock({ adapter, key, ttl })` cached per key + `lock.using()` for auto-extension (defaults: retryAttempts 3, retryDelay 100 ms, extends at 80 % of ttl, circuit breaker with a PING per new lock object)',
  'sesamecare-redlock':
    '`redlock.using()` for auto-extension (defaults: retryCount 10, retryDelay 200±100 ms, extends 500 ms before expiry)',
}

/** The settings we had to change from the library's defaults, for the report. */
export function budgetNote(name: LibraryName, budgetMs: number): string {
  switch (name) {
    case 'async-redis-lock':
      return `retryTimeoutMs ${budgetMs} (default 1000)`
    case 'redlock4':
    case 'redlock5':
    case 'sesamecare-redlock':
      return `retryCount ${Math.ceil(budgetMs / 200)} (default 10)`
    case 'redis-semaphore':
      return `acquireTimeout ${budgetMs} (default 10000)`
    case 'redlock-universal':
      return `retryAttempts ${Math.ceil(budgetMs / 100)} (default 3)`
    case 'raw':
    case 'raw-pubsub':
      return `retry for up to ${budgetMs} ms`
  }
}

/** How a variant (issue 13 scenarios) holds its keys, for the report. */
export function holdNote(lib: LibraryName, hold: Hold): string {
  if (lib === 'async-redis-lock') {
    if (hold.kind === 'shared') return '`locker.acquire(key, { shared: true })`'
    if (hold.kind === 'semaphore') return `\`locker.acquire(key, { limit: ${hold.limit} })\``
    return '`locker.acquire(key)` (exclusive, the mutex)'
  }
  if (lib === 'redis-semaphore' && hold.kind === 'semaphore')
    return `\`new Semaphore(client, key, ${hold.limit}, { lockTimeout, onLockLost })\` per acquisition (defaults: retryInterval 10 ms, acquireTimeout 10 s, refresh every 0.8 × lockTimeout)`
  if (lib === 'redis-semaphore')
    return '`new Mutex(client, key, { lockTimeout, onLockLost })` per acquisition'
  return LIBRARY_NOTES[lib]
}

export async function createAdapter(name: LibraryName, config: AdapterConfig): Promise<LockAdapter> {
  if (!isExclusive(config.hold) && name !== 'async-redis-lock' && name !== 'redis-semaphore')
    throw new Error(`${name} has no ${config.hold?.kind} locks`)
  if (config.hold?.kind === 'shared' && name === 'redis-semaphore')
    throw new Error(`${name} has no shared locks`)
  const client = await connectClient(config.port)
  switch (name) {
    case 'async-redis-lock':
      return ours(client, config)
    case 'raw':
      return raw(client, config)
    case 'raw-pubsub':
      return rawPubsub(client, config)
    case 'redlock4':
      return redlock4(client, config)
    case 'redlock5': {
      // Its package.json "exports" hides its types from NodeNext resolution: load it untyped.
      const mod = createRequire(import.meta.url)('redlock5') as { default: UsingRedlockCtor }
      return usingRedlock(name, client, config, new mod.default([client], redlockSettings(config)))
    }
    case 'sesamecare-redlock':
      return usingRedlock(name, client, config, new SesameRedlock([client], redlockSettings(config)))
    case 'redis-semaphore':
      return semaphore(client, config)
    case 'redlock-universal':
      return universal(client, config)
  }
}

function ours(client: Redis, config: AdapterConfig): LockAdapter {
  const locker = new Locker(client, { lifetimeMs: config.lifetimeMs })
  const hold = config.hold
  const given = {
    ...(config.waitBudgetMs === undefined ? {} : { retryTimeoutMs: config.waitBudgetMs }),
    ...(hold?.kind === 'shared' ? { shared: true } : {}),
    ...(hold?.kind === 'semaphore' ? { limit: hold.limit } : {}),
  }
  // No options object at all for a plain mutex at defaults, exactly as before issue 13.
  const options = Object.keys(given).length === 0 ? undefined : given
  type L = Awaited<ReturnType<Locker['acquire']>>
  return {
    name: 'async-redis-lock',
    acquire: async (key) => held(await locker.acquire(key, options)),
    release: async (h) => void (await as<L>(h).release()),
    isLost: (h) => as<L>(h).signal.aborted,
    lost: () => locker.stats().lost,
    redisKey: (key) => key,
    close: async () => {
      await locker.close()
      await closeClient(client)
    },
  }
}

function redlockSettings(config: AdapterConfig): { retryCount?: number } {
  return config.waitBudgetMs === undefined ? {} : { retryCount: Math.ceil(config.waitBudgetMs / 200) }
}

/** The part of redlock 4's CommonJS API we use (it ships no types). */
interface Redlock4Lock {
  expiration: number
  unlock(): Promise<void>
  extend(ttl: number): Promise<Redlock4Lock>
}
interface Redlock4 {
  on(event: string, listener: (err: unknown) => void): void
  lock(resource: string, ttl: number): Promise<Redlock4Lock>
}
type Redlock4Ctor = new (clients: unknown[], options?: { retryCount?: number }) => Redlock4

function redlock4(client: Redis, config: AdapterConfig): LockAdapter {
  const Ctor = createRequire(import.meta.url)('redlock4') as Redlock4Ctor
  const redlock = new Ctor([client], redlockSettings(config))
  redlock.on('clientError', () => {})
  let lost = 0
  type H = { lock: Redlock4Lock; timer?: NodeJS.Timeout; lost: boolean; released: boolean }
  // v4 has no auto-extension; for the held-locks scenario we extend like v5's using()
  // does: 500 ms before the local expiration.
  const schedule = (h: H) => {
    h.timer = setTimeout(
      () => {
        h.lock.extend(config.lifetimeMs).then(
          () => !h.released && schedule(h),
          () => {
            if (h.released) return
            h.lost = true
            lost++
          },
        )
      },
      Math.max(0, h.lock.expiration - Date.now() - 500),
    )
  }
  return {
    name: 'redlock4',
    acquire: async (key) => {
      const h: H = { lock: await redlock.lock(key, config.lifetimeMs), lost: false, released: false }
      if (config.selfExtend) schedule(h)
      return held(h)
    },
    release: async (x) => {
      const h = as<H>(x)
      h.released = true
      clearTimeout(h.timer)
      await h.lock.unlock()
    },
    isLost: (x) => as<H>(x).lost,
    lost: () => lost,
    redisKey: (key) => key,
    close: () => closeClient(client),
  }
}

/** What redlock 5 and @sesamecare-oss/redlock have in common. */
interface UsingRedlock {
  on(event: 'error', listener: (err: unknown) => void): unknown
  using<T>(
    resources: string[],
    duration: number,
    settings: object,
    routine: (signal: AbortSignal) => Promise<T>,
  ): Promise<T>
}

type UsingRedlockCtor = new (clients: unknown[], settings?: { retryCount?: number }) => UsingRedlock

/** A lock held inside a `using()` routine until `release` lets the routine return. */
interface UsingHeld {
  signal: AbortSignal | undefined
  letGo: () => void
  done: Promise<unknown> | undefined
}

/** Turns a `using(routine)` API into acquire/release; rejects if acquiring fails. */
function holdWith(run: (routine: (signal: AbortSignal) => Promise<void>) => Promise<unknown>): Promise<Held> {
  return new Promise<Held>((resolve, reject) => {
    let letGo = () => {}
    const gate = new Promise<void>((r) => {
      letGo = r
    })
    const h: UsingHeld = { signal: undefined, letGo, done: undefined }
    let acquired = false
    h.done = run(async (signal) => {
      acquired = true
      h.signal = signal
      resolve(held(h))
      await gate
    })
    h.done.catch((err: unknown) => {
      if (!acquired) reject(err)
    })
  })
}

async function releaseHeld(x: Held): Promise<void> {
  const h = as<UsingHeld>(x)
  h.letGo()
  await h.done
}

function usingRedlock(
  name: LibraryName,
  client: Redis,
  config: AdapterConfig,
  redlock: UsingRedlock,
): LockAdapter {
  // redlock 5 emits 'error' for every failed attempt and crashes the process without a listener.
  redlock.on('error', () => {})
  let lost = 0
  const settings = redlockSettings(config)
  return {
    name,
    acquire: (key) =>
      holdWith((routine) =>
        redlock.using([key], config.lifetimeMs, settings, async (signal) => {
          signal.addEventListener('abort', () => lost++, { once: true })
          await routine(signal)
        }),
      ),
    release: releaseHeld,
    isLost: (h) => as<UsingHeld>(h).signal?.aborted === true,
    lost: () => lost,
    redisKey: (key) => key,
    close: () => closeClient(client),
  }
}

function semaphore(client: Redis, config: AdapterConfig): LockAdapter {
  let lost = 0
  const options = {
    lockTimeout: config.lifetimeMs,
    // The default handler throws an unhandled error; count the loss instead.
    onLockLost: () => {
      lost++
    },
    ...(config.waitBudgetMs === undefined ? {} : { acquireTimeout: config.waitBudgetMs }),
  }
  const hold = config.hold
  if (hold?.kind === 'semaphore') {
    return {
      name: 'redis-semaphore',
      acquire: async (key) => {
        const semaphore = new Semaphore(client, key, hold.limit, options)
        await semaphore.acquire()
        return held(semaphore)
      },
      release: (h) => as<Semaphore>(h).release(),
      isLost: (h) => !as<Semaphore>(h).isAcquired,
      lost: () => lost,
      redisKey: (key) => `semaphore:${key}`,
      close: () => closeClient(client),
    }
  }
  return {
    name: 'redis-semaphore',
    acquire: async (key) => {
      const mutex = new Mutex(client, key, options)
      await mutex.acquire()
      return held(mutex)
    },
    release: (h) => as<Mutex>(h).release(),
    isLost: (h) => !as<Mutex>(h).isAcquired,
    lost: () => lost,
    redisKey: (key) => `mutex:${key}`,
    close: () => closeClient(client),
  }
}

function universal(client: Redis, config: AdapterConfig): LockAdapter {
  const adapter = new IoredisAdapter(client)
  // Lock objects are bound to one key; reuse them per key as an application would
  // (each new one starts with a PING health check).
  const locks = new Map<string, UniversalLock>()
  let lost = 0
  const retry =
    config.waitBudgetMs === undefined ? {} : { retryAttempts: Math.ceil(config.waitBudgetMs / 100) }
  return {
    name: 'redlock-universal',
    acquire: (key) => {
      let lock = locks.get(key)
      if (!lock) {
        if (locks.size >= 20_000) locks.clear()
        lock = createLock({ adapter, key, ttl: config.lifetimeMs, ...retry })
        locks.set(key, lock)
      }
      const l = lock
      return holdWith((routine) =>
        l.using(async (signal) => {
          signal.addEventListener('abort', () => lost++, { once: true })
          await routine(signal)
        }),
      )
    },
    release: releaseHeld,
    isLost: (h) => as<UsingHeld>(h).signal?.aborted === true,
    lost: () => lost,
    redisKey: (key) => key,
    close: () => closeClient(client),
  }
}
