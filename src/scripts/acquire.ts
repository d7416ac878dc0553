import { fenceKey } from '../internal/keys.js'
import { LUA_TOKEN_PATTERN, STORED_TOKEN, TOKEN_LENGTH } from '../internal/token.js'
import { typedScript, unexpectedReply } from './script.js'

/** How long fence marks outlive their lock key: long enough to ride out a server clock step back. */
export const FENCE_MARK_TTL_MS = 3_600_000

/**
 * Lua: `ours(v)` is true for a value of our stored format (`arl1.` and 22 base64url
 * characters, then the waiting mark `!` or nothing), false for anything else: values
 * other software wrote, and 0.1.0's tokens (22 characters, no version prefix).
 */
export const LUA_OURS = `
local function ours(v)
  local n = #v
  if n == ${TOKEN_LENGTH + 1} and string.byte(v, n) == 33 then
    v = string.sub(v, 1, ${TOKEN_LENGTH})
  elseif n ~= ${TOKEN_LENGTH} then
    return false
  end
  return string.find(v, '${LUA_TOKEN_PATTERN}') ~= nil
end
`

/** Lua: the error reply for the key (a Lua expression) holding a string value that is not ours. */
export function luaNotALock(key: string): string {
  return `redis.error_reply('NOTALOCK lock key ' .. ${key} .. ' holds a value this library did not write (another application, or another stored format such as 0.1.0): not a lock')`
}

/** One attempt at taking every key of a lock at once. */
export interface AcquireRequest {
  readonly keys: readonly string[]
  /** The new owner's token (unique per attempt). */
  readonly token: string
  /** Lease length: the keys' TTL. */
  readonly lifetimeMs: number
  /** Issue a fencing token (the script then also reads and writes the fence marks). */
  readonly fencing: boolean
}

/** Outcome of one acquisition attempt. */
export type AttemptResult =
  | {
      readonly acquired: true
      /** The fencing token; undefined without fencing. */
      readonly fence: bigint | undefined
    }
  | {
      readonly acquired: false
      /** The blocking key's remaining lease in ms (-1: it has no TTL). */
      readonly pttl: number
      /** Which key (index into the request's keys) blocked the attempt. */
      readonly blockedIndex: number
    }

/**
 * Takes every lock key at once or none of them and, when asked to, issues a fencing
 * token. Without fencing a single-key acquisition does not need this script (a plain
 * `SET NX PX` does it); it is used for several keys and after a plain SET failed.
 *
 * KEYS[1..n]   lock keys; with fencing also KEYS[n+1..2n], their fence-mark keys
 *              (same slot as each lock key)
 * ARGV[1]      owner token
 * ARGV[2]      lease length, ms
 * ARGV[3]      fence-mark TTL, ms; '0': no fencing (KEYS holds only the lock keys)
 * Returns      {1, fence} when all keys were free and are now ours; fence is a decimal
 *              string: max(previous mark + 1, server TIME in µs), stored back as the
 *              mark. {1} without fencing.
 *              {0, pttl, i} when key i is held (it holds another owner's token, of our
 *              format); pttl is its remaining ms (-1: no TTL).
 * Errors       WRONGTYPE when a lock key holds a non-string value; NOTALOCK when it
 *              holds a string that is not of our format (see {@link LUA_OURS}). Both
 *              say "not a lock"; keys taken before it are deleted again. Never contention.
 * Replays      a key already holding ARGV[1] counts as taken: tokens are unique per
 *              attempt, so only a resent copy of this same request (or of the plain
 *              SET that preceded it) can have set it.
 * Waiting mark a held key that blocks the attempt gets '!' appended to its holder's
 *              token (once, and only with a TTL; a value not of our format is never
 *              written to), so the holder's release knows someone waits and
 *              publishes. Every script that
 *              compares tokens accepts both forms. An unmarked release sends no message:
 *              nobody outside the holder's own Locker can be waiting (every waiter's
 *              failed attempt went through this script and marked the holder).
 * Cluster      all keys must share one slot; the caller checks before sending.
 *
 * Keys taken before a later one turns out to be held are deleted again inside the
 * script, which is atomic, so nobody can observe a partial acquisition.
 */
export const ACQUIRE = typedScript<AcquireRequest, AttemptResult>(
  'acquire',
  `${LUA_OURS}
local fenced = ARGV[3] ~= '0'
local n = fenced and #KEYS / 2 or #KEYS
for i = 1, n do
  if not redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then
    local v = redis.pcall('GET', KEYS[i])
    if v ~= ARGV[1] and v ~= ARGV[1] .. '!' then
      for j = 1, i - 1 do redis.call('DEL', KEYS[j]) end
      if type(v) == 'table' and v.err then
        return redis.error_reply('WRONGTYPE lock key ' .. KEYS[i] .. ' holds a non-string value, not a lock')
      end
      if not ours(v) then return ${luaNotALock('KEYS[i]')} end
      local pttl = redis.call('PTTL', KEYS[i])
      -- Mark the holder's token: someone waits, so its release must announce itself.
      if pttl > 0 and #v == ${TOKEN_LENGTH} then redis.call('APPEND', KEYS[i], '!') end
      return {0, pttl, i}
    end
    -- Already ours: this very request was delivered twice (a client resent it
    -- after a reconnect). Count it as taken rather than leave an orphan behind.
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
end
if not fenced then return {1} end
local now = redis.call('TIME')
local fence = tonumber(now[1]) * 1000000 + tonumber(now[2])
for i = n + 1, 2 * n do
  local mark = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if mark >= fence then fence = mark + 1 end
end
local s = string.format('%.0f', fence)
for i = n + 1, 2 * n do redis.call('SET', KEYS[i], s, 'PX', ARGV[3]) end
return {1, s}
`,
  ({ keys, token, lifetimeMs, fencing }) => ({
    keys: fencing ? [...keys, ...keys.map(fenceKey)] : [...keys],
    args: [token, String(lifetimeMs), fencing ? String(FENCE_MARK_TTL_MS) : '0'],
  }),
  decodeAttempt,
)

/** A success without fencing: also what a plain `SET NX PX` that set the key stands for. */
export const ACQUIRED: AttemptResult = Object.freeze({ acquired: true, fence: undefined })

function decodeAttempt(reply: unknown): AttemptResult {
  if (Array.isArray(reply)) {
    const [status, value, index] = reply as unknown[]
    if (Number(status) === 1 && reply.length === 1) return ACQUIRED
    if (Number(status) === 1 && (typeof value === 'string' || typeof value === 'number')) {
      return { acquired: true, fence: BigInt(value) }
    }
    if (Number(status) === 0) {
      return { acquired: false, pttl: Number(value), blockedIndex: Number(index) - 1 }
    }
  }
  throw unexpectedReply('acquire', reply)
}

/**
 * A holder's token as stored, less the '!' a waiter appends (see {@link ACQUIRE}). Only a
 * value of our format loses it; any other value is returned as it is.
 */
export function withoutWaitingMark(stored: string): string {
  return stored.length === TOKEN_LENGTH + 1 && STORED_TOKEN.test(stored) ? stored.slice(0, -1) : stored
}
