import { fenceKey, holdersKey } from '../internal/keys.js'
import {
  type HoldKind,
  LUA_KIND,
  LUA_OURS,
  luaNotALock,
  SEMAPHORE_MARKER,
  SHARED_MARKER,
  withoutWaitingMark,
} from './acquire.js'
import { typedScript, unexpectedReply } from './script.js'

/** What `inspect` reads about one key. */
export interface KeyState {
  /** The holder's token (without the waiting mark), or null when the key is free. */
  readonly token: string | null
  /** The key's remaining TTL in ms: -1 no TTL, -2 no key. */
  readonly pttl: number
  /** The key's fence mark, or null. */
  readonly fence: bigint | null
  /** How the key is held; null when it is free. */
  readonly kind: HoldKind | null
  /** A semaphore's limit; null for the other kinds. */
  readonly limit: number | null
  /**
   * For a shared lock or semaphore, each unexpired holder's remaining lease in ms,
   * shortest first (never their tokens); empty for the other kinds.
   */
  readonly holders: readonly number[]
}

/**
 * Reads the state of one lock key without changing it.
 *
 * KEYS[1]      lock key; KEYS[2] its fence-mark key; KEYS[3] its holders set
 * Returns      {value or false, pttl, fence mark or false, holders}: the value as
 *              stored (a token or a kind's marker, with the waiting mark '!' if a
 *              waiter set one; the decoder strips it); for a shared lock or semaphore
 *              `holders` is a list of each unexpired holder's remaining ms, otherwise
 *              empty
 * Errors       WRONGTYPE when the key holds a non-string value, NOTALOCK when it holds a
 *              string not of our format (as ACQUIRE says them: "not a lock")
 */
export const INSPECT = typedScript<{ readonly key: string }, KeyState>(
  'inspect',
  `${LUA_OURS}${LUA_KIND}
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' and v.err then
  return redis.error_reply('WRONGTYPE lock key ' .. KEYS[1] .. ' holds a non-string value, not a lock')
end
local holders = {}
if v then
  local kind = kindOf(v)
  if not kind then return ${luaNotALock('KEYS[1]')} end
  if kind ~= 'x' then
    local now = nowMs()
    local list = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. now, '+inf', 'WITHSCORES')
    for i = 2, #list, 2 do holders[#holders + 1] = tonumber(list[i]) - now end
  end
end
return {v, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2]), holders}
`,
  ({ key }) => ({ keys: [key, fenceKey(key), holdersKey(key)], args: [] }),
  (reply) => {
    if (!Array.isArray(reply)) throw unexpectedReply('inspect', reply)
    const [value, pttl, fence, holders] = reply as [unknown, unknown, unknown, unknown]
    const fenceMark = typeof fence === 'string' ? BigInt(fence) : null
    const base: { pttl: number; fence: bigint | null } = { pttl: Number(pttl), fence: fenceMark }
    if (typeof value !== 'string') return { ...base, token: null, kind: null, limit: null, holders: [] }
    const stored = withoutWaitingMark(value).replace(/!$/, '')
    const remaining = Array.isArray(holders) ? holders.map(Number) : []
    if (stored === SHARED_MARKER)
      return { ...base, token: null, kind: 'shared', limit: null, holders: remaining }
    if (stored.startsWith(SEMAPHORE_MARKER)) {
      const limit = Number(stored.slice(SEMAPHORE_MARKER.length))
      return { ...base, token: null, kind: 'semaphore', limit, holders: remaining }
    }
    return { ...base, token: stored, kind: 'exclusive', limit: null, holders: [] }
  },
)

/**
 * The server's `run_id` (from `INFO server`): random per server process, so two
 * connections that report the same one reach the same Redis, whatever address
 * (name, proxy, port forward) they used.
 *
 * Returns      the run_id as a string
 */
export const SERVER_ID = typedScript<void, string>(
  'server-id',
  `
return string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
`,
  () => ({ keys: [], args: [] }),
  (reply) => {
    if (typeof reply !== 'string') throw unexpectedReply('connect', reply)
    return reply
  },
)
