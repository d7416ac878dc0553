// The interface every library adapter implements, and what they share.
import { Redis } from 'ioredis'
import { LOOPBACK } from './redis.js'

export const LIBRARIES = [
  'async-redis-lock',
  'raw',
  'redlock4',
  'redlock5',
  'redis-semaphore',
  'redlock-universal',
  'sesamecare-redlock',
  'raw-pubsub',
] as const
export type LibraryName = (typeof LIBRARIES)[number]
/** Reference floors, not libraries: they never count as "best peer". */
export const FLOORS: readonly LibraryName[] = ['raw', 'raw-pubsub']
export const isPeer = (l: LibraryName) => l !== 'async-redis-lock' && !FLOORS.includes(l)

export interface AdapterConfig {
  readonly port: number
  /** Lease length for every library. */
  readonly lifetimeMs: number
  /**
   * How long one acquire keeps trying under contention. Undefined keeps the library's
   * default budget; set, it is translated to the library's own knob (retry count,
   * acquire timeout) at its default retry delay.
   */
  readonly waitBudgetMs?: number | undefined
  /** Extend leases from the bench for libraries without auto-extension (redlock4). */
  readonly selfExtend?: boolean | undefined
  /**
   * How the key is held (issue 13 scenarios); undefined = exclusive. Only
   * async-redis-lock (`shared`, `limit`) and redis-semaphore (`Semaphore` for a limit)
   * have other kinds; the other adapters reject anything but exclusive.
   */
  readonly hold?: Hold | undefined
}

/** The kind of hold a scenario asks for: a mutex, a shared (read) hold, or a semaphore permit. */
export type Hold =
  | { readonly kind: 'exclusive' }
  | { readonly kind: 'shared' }
  | { readonly kind: 'semaphore'; readonly limit: number }

/** One row of the issue-13 scenarios: a library holding keys in one way. */
export interface Variant {
  /** Row name in the report, unique within a scenario. */
  readonly label: string
  readonly lib: LibraryName
  readonly hold: Hold
}

export const isExclusive = (hold: Hold | undefined) => hold === undefined || hold.kind === 'exclusive'

/** A held lock, opaque to the scenarios. */
export type Held = { readonly __held: unique symbol }

export interface LockAdapter {
  readonly name: LibraryName
  acquire(key: string): Promise<Held>
  release(held: Held): Promise<void>
  /** True when the library signalled that this held lock was lost. */
  isLost(held: Held): boolean
  /** Losses the library reported so far (loss signals, failed extensions). */
  lost(): number
  /** The Redis key the library stores the lock of `key` in. */
  redisKey(key: string): string
  close(): Promise<void>
}

export async function connectClient(port: number): Promise<Redis> {
  const client = new Redis({ host: LOOPBACK, port, lazyConnect: true })
  client.on('error', () => {})
  await client.connect()
  return client
}

/** Casts a library's own handle out of the opaque `Held`. */
export const as = <T>(x: unknown) => x as T
/** Wraps a library's own handle as an opaque `Held`. */
export const held = (x: unknown) => x as Held

export async function closeClient(client: Redis): Promise<void> {
  await client.quit().catch(() => client.disconnect())
}
