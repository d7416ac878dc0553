import { fenceKey } from '../internal/keys.js'
import { LUA_OURS, luaNotALock, withoutWaitingMark } from './acquire.js'
import { typedScript, unexpectedReply } from './script.js'

/** What `inspect` reads about one key. */
export interface KeyState {
  /** The holder's token (without the waiting mark), or null when the key is free. */
  readonly token: string | null
  /** The key's remaining TTL in ms: -1 no TTL, -2 no key. */
  readonly pttl: number
  /** The key's fence mark, or null. */
  readonly fence: bigint | null
}

/**
 * Reads the state of one lock key without changing it.
 *
 * KEYS[1]      lock key; KEYS[2] its fence-mark key
 * Returns      {token or false, pttl, fence mark or false}; the token as stored, with
 *              the waiting mark '!' if a waiter set one (the decoder strips it)
 * Errors       WRONGTYPE when the key holds a non-string value, NOTALOCK when it holds a
 *              string not of our format (as ACQUIRE says them: "not a lock")
 */
export const INSPECT = typedScript<{ readonly key: string }, KeyState>(
  'inspect',
  `${LUA_OURS}
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' and v.err then
  return redis.error_reply('WRONGTYPE lock key ' .. KEYS[1] .. ' holds a non-string value, not a lock')
end
if v and not ours(v) then return ${luaNotALock('KEYS[1]')} end
return {v, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2])}
`,
  ({ key }) => ({ keys: [key, fenceKey(key)], args: [] }),
  (reply) => {
    if (!Array.isArray(reply)) throw unexpectedReply('inspect', reply)
    const [token, pttl, fence] = reply as [unknown, unknown, unknown]
    return {
      token: typeof token === 'string' ? withoutWaitingMark(token) : null,
      pttl: Number(pttl),
      fence: typeof fence === 'string' ? BigInt(fence) : null,
    }
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
