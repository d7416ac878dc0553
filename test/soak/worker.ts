/**
 * A soak worker process: loops acquire → critical section → release on a few keys
 * until `endAt`, logging every event synchronously (see log.ts) so a SIGKILL loses
 * nothing already logged. Configured by the SOAK_WORKER environment variable (a
 * JSON WorkerConfig). The lock Redis (or each quorum node) is reached through this
 * worker's own fault proxy; the store Redis directly.
 */
import { existsSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { GlideClient, Logger } from '@valkey/valkey-glide'
import { Redis } from 'ioredis'
import { type Lock, LockError, type Locker } from '../../src/index.js'
import { createLocker } from '../../src/internal/testing.js'
import { ACQUIRE } from '../../src/scripts/index.js'
import { monoMs, SyncLog } from './log.js'
import { deriveSeed, mulberry32 } from './prng.js'
import { fencedWrite, storeKeys } from './store.js'
import { type HoldSpec, internalsFor, type Variant } from './variants.js'

export interface WorkerConfig {
  id: number
  /** Namespace of this run's keys in the store. */
  run: string
  /** One URL per lock node (each through this worker's own proxy); several make a quorum. */
  lockUrls: string[]
  storeUrl: string
  keys: string[]
  logPath: string
  variant: Variant
  seed: number
  /** Incremented on every respawn, so a respawned worker draws a fresh stream. */
  incarnation: number
  /** A file that appears once every worker is ready; it holds the monoMs at which to stop. */
  goPath: string
  lifetimeMs: number
  extendIntervalMs: number
  retryTimeoutMs: number | null
  /** Critical-section rounds per grant, drawn from [minRounds, maxRounds]. */
  minRounds: number
  maxRounds: number
  /** Longest pause between rounds: makes grants span several extensions. */
  roundGapMs: number
  /** Longest pause between a release and the next attempt. */
  thinkMs: number
  /** Control 3 only: block the event loop this long whenever an acquire reply says "acquired". */
  stallMs?: number
  /** The Locker's attemptTimeoutMs, when not the default. */
  attemptTimeoutMs?: number
  /** The client library of the lock connections (the store is always ioredis). */
  client: 'ioredis' | 'valkey-glide'
  /** How this worker holds its keys: exclusive (the default), shared or exclusive, or semaphore permits. */
  hold?: HoldSpec
}

/** The kind of one acquisition, as logged: what the checker judges each grant by. */
type GrantKind = { kind: 'exclusive' } | { kind: 'shared' } | { kind: 'semaphore'; limit: number }

/**
 * A write is started only with this much lease left: the counter write is sent
 * right after the check but lands a moment later, and on a loaded 2-core machine the
 * process can be descheduled in between. Any application does the same ("do not
 * start what you cannot finish under the lease").
 */
const WRITE_MARGIN_MS = 25
/** How often a held lock's state is logged: the checker's view of each deadline. */
const OBSERVE_EVERY_MS = 20

const cfg = JSON.parse(process.env.SOAK_WORKER ?? '') as WorkerConfig
const rng = mulberry32(deriveSeed(cfg.seed, `worker:${cfg.run}:${cfg.id}:${cfg.incarnation}`))
const log = new SyncLog(cfg.logPath, { w: cfg.id, pid: process.pid })
/**
 * Even workers acquire with fencing (the acquire script) and write through the fenced
 * register; odd ones without (a plain SET NX PX), so both acquisition paths contend
 * for the same keys.
 */
const fencing = cfg.id % 2 === 0

function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof LockError) return { code: err.code, name: err.name, message: err.message }
  if (err instanceof Error) return { code: 'OTHER', name: err.name, message: err.message }
  return { code: 'OTHER', message: String(err) }
}

/** Logs the lock's own account of itself; the time is read first, so t + rem never overstates. */
function observe(ev: string, lock: Lock, key: string, extra: Record<string, unknown> = {}): boolean {
  const t = monoMs()
  const held = lock.isHeld()
  const rem = lock.remainingMs()
  log.write(ev, { key, token: lock.token, held, rem, ...extra }, t)
  return held
}

function busyWait(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // A synchronous stall, like a long GC pause or a CPU-bound callback.
  }
}

/** Draws the kind of the next acquisition from the worker's hold spec. */
function nextKind(): GrantKind {
  const hold = cfg.hold ?? { kind: 'exclusive' }
  if (hold.kind === 'semaphore') return { kind: 'semaphore', limit: hold.limit }
  if (hold.kind === 'rw' && rng.next() < hold.sharedShare) return { kind: 'shared' }
  return { kind: 'exclusive' }
}

/**
 * A shared holder (a reader) reads the key's counter once per round, only while it
 * holds with the write margin left (the read then lands inside its grant). Writers
 * change the counter only under an exclusive grant, so every read of one shared
 * grant must see the same value: a read that differs is a write that landed while
 * this reader held (a "torn read"), whatever the library says about it.
 */
async function readSection(lock: Lock, key: string, store: Redis): Promise<void> {
  const k = storeKeys(cfg.run, key)
  const rounds = cfg.minRounds + rng.int(cfg.maxRounds - cfg.minRounds + 1)
  for (let round = 0; round < rounds; round++) {
    if (!observe('obs', lock, key)) return
    const t = monoMs()
    const held = lock.isHeld()
    const rem = lock.remainingMs()
    if (held && rem >= WRITE_MARGIN_MS) {
      const value = Number((await store.get(k.counter)) ?? 0)
      log.write('read', { key, token: lock.token, value, held, rem }, t)
    } else {
      log.write('skip-write', { key, token: lock.token, held, rem }, t)
    }
    if (round + 1 < rounds) await sleep(rng.int(cfg.roundGapMs + 1))
  }
}

/**
 * A semaphore permit holder: rounds of "work" (a short sleep) under observation. The
 * resource a semaphore protects tolerates `limit` users, so there is no counter to
 * break; the checker counts concurrent valid permits from the logs.
 */
async function permitSection(lock: Lock, key: string): Promise<void> {
  const rounds = cfg.minRounds + rng.int(cfg.maxRounds - cfg.minRounds + 1)
  for (let round = 0; round < rounds; round++) {
    if (!observe('obs', lock, key)) return
    await sleep(2 + rng.int(5))
    if (round + 1 < rounds) await sleep(rng.int(cfg.roundGapMs + 1))
  }
}

async function criticalSection(lock: Lock, key: string, store: Redis): Promise<void> {
  const k = storeKeys(cfg.run, key)
  const rounds = cfg.minRounds + rng.int(cfg.maxRounds - cfg.minRounds + 1)
  for (let round = 0; round < rounds; round++) {
    // The fenced write is sent regardless of isHeld(): protecting the resource from
    // a holder that does not know it lost the lock is the fence's job, and a paused
    // holder resuming here is exactly the case the soak wants to see rejected.
    if (fencing) {
      const fenced = await fencedWrite(store, cfg.run, key, lock.fence, `${cfg.id}:${lock.token}:${round}`)
      log.write('fenced', { key, token: lock.token, fence: lock.fence.toString(), ...fenced })
    }
    if (!observe('obs', lock, key)) return
    const value = Number((await store.get(k.counter)) ?? 0)
    await sleep(2 + rng.int(5))
    const t = monoMs()
    const held = lock.isHeld()
    const rem = lock.remainingMs()
    if (held && rem >= WRITE_MARGIN_MS) {
      // Logged before it is sent: a kill between the two is counted as an unconfirmed write.
      log.write('write', { key, token: lock.token, value: value + 1, held, rem }, t)
      await store.set(k.counter, String(value + 1))
      log.write('write-ok', { key, token: lock.token, value: value + 1 })
    } else {
      log.write('skip-write', { key, token: lock.token, held, rem }, t)
    }
    if (round + 1 < rounds) await sleep(rng.int(cfg.roundGapMs + 1))
  }
}

/**
 * Control 3's "slow acquire": the process stalls (a GC pause, a CPU-bound callback)
 * right when a successful acquire reply arrives, before the library looks at it, so
 * the reply is processed after the lease has run out. Only the library's validity
 * check stands between that reply and a lock that is already gone.
 */
function stallOnAcquireReplies(client: Redis, ms: number): void {
  type Call = (first: string, ...rest: unknown[]) => Promise<unknown>
  const target = client as unknown as { evalsha: Call; eval: Call }
  // The library sends a script's source (EVAL) the first time and its SHA afterwards.
  const wrap = (original: Call, isAcquire: (first: string) => boolean): Call => {
    return async (first, ...rest) => {
      const reply = await original(first, ...rest)
      if (isAcquire(first) && Array.isArray(reply) && Number(reply[0]) === 1) busyWait(ms)
      return reply
    }
  }
  target.evalsha = wrap(target.evalsha.bind(client), (sha) => sha === ACQUIRE.sha)
  target.eval = wrap(target.eval.bind(client), (source) => source === ACQUIRE.source)
}

/** Waits for the go file: the load window starts when every worker is ready. */
async function waitForGo(): Promise<number> {
  for (;;) {
    if (existsSync(cfg.goPath)) return Number(readFileSync(cfg.goPath, 'utf8'))
    await sleep(10)
  }
}

/** One grant: log it, watch it, run the critical section, release. */
async function holdAndRelease(lock: Lock, key: string, store: Redis, kind: GrantKind): Promise<void> {
  observe('acquired', lock, key, { ...kind, ...(fencing ? { fence: lock.fence.toString() } : {}) })
  const token = lock.token
  const onLost = (): void => {
    const reason = lock.signal.reason as { reason?: string; code?: string } | undefined
    log.write('lost', { key, token, reason: reason?.reason, code: reason?.code })
  }
  if (lock.signal.aborted) onLost()
  else lock.signal.addEventListener('abort', onLost, { once: true })
  // Frequent observations keep the checker's view of the deadline fresh.
  const heartbeat = setInterval(() => {
    if (lock.isHeld()) observe('obs', lock, key)
  }, OBSERVE_EVERY_MS)
  try {
    // Entered even when not held (a dead-on-arrival lock): its fenced write shows what
    // a holder that ignored isHeld() would do.
    if (kind.kind === 'shared') await readSection(lock, key, store)
    else if (kind.kind === 'semaphore') await permitSection(lock, key)
    else await criticalSection(lock, key, store)
  } catch (err) {
    log.write('error', { op: 'critical', key, ...errorFields(err) })
  } finally {
    clearInterval(heartbeat)
  }
  log.write('release-start', { key, token })
  try {
    const result = await lock.release()
    log.write('released', { key, token, result })
  } catch (err) {
    log.write('error', { op: 'release', key, token, ...errorFields(err) })
  }
}

async function loop(locker: Locker, store: Redis, endAt: number): Promise<void> {
  while (monoMs() < endAt) {
    const key = rng.pick(cfg.keys)
    const kind = nextKind()
    log.write('attempt', { key, ...kind })
    let lock: Lock
    try {
      lock = await locker.acquire(key, {
        retryTimeoutMs: cfg.retryTimeoutMs,
        ...(kind.kind === 'shared' ? { shared: true } : {}),
        ...(kind.kind === 'semaphore' ? { limit: kind.limit } : {}),
      })
    } catch (err) {
      log.write('error', { op: 'acquire', key, ...errorFields(err) })
      await sleep(5 + rng.int(20))
      continue
    }
    await holdAndRelease(lock, key, store, kind)
    await sleep(rng.int(cfg.thinkMs + 1))
  }
}

/** A GLIDE client through the worker's proxy, retried like {@link connect}. */
async function connectGlide(url: string): Promise<GlideClient> {
  const { hostname, port } = new URL(url)
  for (;;) {
    const creating = GlideClient.createClient({
      addresses: [{ host: hostname, port: Number(port) }],
      requestTimeout: cfg.lifetimeMs,
    })
    try {
      return await Promise.race([
        creating,
        sleep(2000).then(() => {
          throw new Error('no GLIDE connection within 2 s')
        }),
      ])
    } catch (err) {
      log.write('error', { op: 'connect', url, ...errorFields(err) })
      void creating.then(
        (c) => c.close(),
        () => {},
      )
      await sleep(100)
    }
  }
}

async function connect(url: string): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 2000 })
  client.on('error', () => {})
  for (;;) {
    try {
      await client.connect()
      return client
    } catch (err) {
      // The proxy may be blackholed or the Redis paused right now: retry until the end.
      log.write('error', { op: 'connect', url, ...errorFields(err) })
      client.disconnect()
      await sleep(100)
    }
  }
}

async function main(): Promise<void> {
  log.write('start', {
    variant: cfg.variant,
    incarnation: cfg.incarnation,
    client: cfg.client,
    hold: cfg.hold ?? { kind: 'exclusive' },
  })
  if (cfg.client === 'valkey-glide') Logger.init('error')
  // Client settings like Locker.fromUrl's; built here because the broken variants
  // need the Locker's test seam.
  const clients: (Redis | GlideClient)[] =
    cfg.client === 'valkey-glide'
      ? await Promise.all(cfg.lockUrls.map(connectGlide))
      : await Promise.all(cfg.lockUrls.map(connect))
  const client = clients[0] as Redis | GlideClient
  if (cfg.stallMs !== undefined) stallOnAcquireReplies(client as Redis, cfg.stallMs)
  const store = new Redis(cfg.storeUrl)
  store.on('error', () => {})
  const options = {
    lifetimeMs: cfg.lifetimeMs,
    extendIntervalMs: cfg.extendIntervalMs,
    fencing,
    ...(cfg.attemptTimeoutMs === undefined ? {} : { attemptTimeoutMs: cfg.attemptTimeoutMs }),
  }
  // Several URLs: a Redlock quorum over independent masters.
  const locker = createLocker(clients.length === 1 ? client : clients, options, internalsFor(cfg.variant))
  console.log('ready')
  await loop(locker, store, await waitForGo())
  // Bounded, so a hanging close is reported as such instead of making a straggler.
  const closed = await Promise.race([locker.close().then(() => true), sleep(5000).then(() => false)])
  if (!closed) log.write('error', { op: 'close', code: 'TIMEOUT', message: 'locker.close() took over 5 s' })
  for (const c of clients) {
    if (c instanceof GlideClient) c.close()
    else c.disconnect()
  }
  store.disconnect()
  log.write('exit', {})
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log.write('error', { op: 'main', ...errorFields(err) })
    process.exit(1)
  },
)
