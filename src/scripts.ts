import { createHash } from 'node:crypto'
import { TOKEN_LENGTH } from './internal/token.js'

/** A Lua script with its SHA1, so callers can try EVALSHA first. */
export interface Script {
  readonly name: string
  readonly source: string
  readonly sha: string
}

export function script(name: string, source: string): Script {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') }
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
 *              {0, pttl, i} when key i is held; pttl is its remaining ms (-1: no TTL).
 * Errors       WRONGTYPE when a lock key holds a non-string value.
 * Replays      a key already holding ARGV[1] counts as taken: tokens are unique per
 *              attempt, so only a resent copy of this same request (or of the plain
 *              SET that preceded it) can have set it.
 * Waiting mark a held key that blocks the attempt gets '!' appended to its holder's
 *              token (once; only a lease-like value: a token's length with a TTL), so the
 *              holder's release knows someone waits and publishes. Every script that
 *              compares tokens accepts both forms. An unmarked release sends no message:
 *              nobody outside the holder's own Locker can be waiting (every waiter's
 *              failed attempt went through this script and marked the holder).
 * Cluster      all keys must share one slot; the caller checks before sending.
 *
 * Keys taken before a later one turns out to be held are deleted again inside the
 * script, which is atomic, so nobody can observe a partial acquisition.
 */
export const ACQUIRE = script(
  'acquire',
  `
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
)

/**
 * Extends a batch of leases in one call. Only a key that still holds the lease's
 * token is re-armed; a missing key is never re-created.
 *
 * KEYS         the lock keys of every lease, lease after lease
 * ARGV[1]      number of leases m
 * ARGV[2..]    per lease: token, lease length in ms, number of keys
 * Returns      m integers: 1 extended, 0 a key was gone (expired), -1 a key has another owner
 * Cluster      one call per slot group; every key of the call in one slot.
 *
 * A multi-key lease is extended only if all its keys are still ours; otherwise
 * nothing of it is touched and the client releases what is left.
 */
export const EXTEND = script(
  'extend',
  `
local out = {}
local k = 1
local a = 2
for l = 1, tonumber(ARGV[1]) do
  local token, ms, nk = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local status = 1
  for i = k, k + nk - 1 do
    local v = redis.call('GET', KEYS[i])
    if v ~= token and v ~= token .. '!' then
      if v then status = -1 break end
      status = 0
    end
  end
  if status == 1 then
    for i = k, k + nk - 1 do redis.call('PEXPIRE', KEYS[i], ms) end
  end
  out[l] = status
  k = k + nk
  a = a + 3
end
return out
`,
)

/**
 * {@link EXTEND} for the common batch: every lease has one key and the same lease
 * length. A third of the arguments (no length and key count per lease), which is most
 * of the work of extending thousands of leases, on both ends.
 *
 * KEYS         one lock key per lease
 * ARGV[1]      lease length in ms, for all
 * ARGV[2..]    the token of each lease, in KEYS order
 * Returns      one integer per lease, as EXTEND
 */
export const EXTEND_UNIFORM = script(
  'extend-uniform',
  `
local out = {}
local ms = ARGV[1]
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v == ARGV[i + 1] or v == ARGV[i + 1] .. '!' then
    redis.call('PEXPIRE', KEYS[i], ms)
    out[i] = 1
  elseif v then
    out[i] = -1
  else
    out[i] = 0
  end
end
return out
`,
)

/** The release script body; only the publishing command differs between modes. */
function releaseSource(publish: 'PUBLISH' | 'SPUBLISH'): string {
  return `
local n = 0
local heard = 0
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v == ARGV[1] or v == ARGV[1] .. '!' then
    redis.call('DEL', KEYS[i])
    n = n + 1
    -- Marked: someone waits for this key.
    if v ~= ARGV[1] then heard = heard + redis.call('${publish}', ARGV[2 + i], ARGV[2]) end
  end
end
return {n, heard}
`
}

/**
 * Deletes the keys that still hold our token and announces each deletion that
 * someone waits for (the key carried the waiting mark, see {@link ACQUIRE}).
 *
 * KEYS[1..n]   lock keys
 * ARGV[1]      owner token
 * ARGV[2]      message published on release (the releasing Locker's id)
 * ARGV[3..]    the release channel of each key, in KEYS order
 * Returns      {deleted, receivers}: how many keys were deleted (0: nothing of ours was
 *              left) and how many subscribers got the announcements (waiters exist).
 * Cluster      PUBLISH is broadcast over the cluster bus to every node; the cluster
 *              backend uses {@link RELEASE_SHARDED} instead.
 */
export const RELEASE = script('release', releaseSource('PUBLISH'))

/**
 * {@link RELEASE} for Redis Cluster: announces with SPUBLISH (Redis ≥ 7), which stays
 * within the shard that owns the channel's slot instead of flooding the cluster bus.
 *
 * KEYS[1..n]   lock keys (one slot)
 * ARGV[1]      owner token
 * ARGV[2]      message published on release (the releasing Locker's id)
 * ARGV[3..]    the release channel of each key, in KEYS order (same slot as its key:
 *              a script may only publish to a channel of a slot its node serves)
 * Returns      {deleted, receivers}, as RELEASE; receivers counts this shard's subscribers.
 */
export const RELEASE_SHARDED = script('release-sharded', releaseSource('SPUBLISH'))

/**
 * Reads the state of one lock key without changing it.
 *
 * KEYS[1]      lock key; KEYS[2] its fence-mark key
 * Returns      {token or false, pttl, fence mark or false}; the token as stored, with
 *              the waiting mark '!' if a waiter set one (the caller strips it)
 */
export const INSPECT = script(
  'inspect',
  `
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2])}
`,
)

/**
 * The server's `run_id` (from `INFO server`): random per server process, so two
 * connections that report the same one reach the same Redis, whatever address
 * (name, proxy, port forward) they used.
 *
 * Returns      the run_id as a string
 */
export const SERVER_ID = script(
  'server-id',
  `
return string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
`,
)
