import { holdersKey, LUA_RELEASE_CHANNEL } from '../internal/keys.js'
import { TOKEN_LENGTH } from '../internal/token.js'
import {
  type AcquireRequest,
  type AttemptResult,
  companionKeys,
  decodeAttempt,
  FENCE_MARK_TTL_MS,
  LUA_KIND,
  LUA_OURS,
  luaNotALock,
  markerOf,
  SHARED,
} from './acquire.js'
import { decodeRelease, type ReleaseRequest, type ReleaseResult } from './release.js'
import { type TypedScript, typedScript } from './script.js'

/**
 * Shared locks and semaphores: a key held by several holders at once.
 *
 * Layout for a lock key K: K holds a marker of the kind (`arl1.shared`, or
 * `arl1.sem.<limit>`; `!` appended once someone waits), with a TTL at least as long as
 * the longest lease of its holders; the holders set (`holdersKey(K)`, a sorted set)
 * maps each holder's token to the server time (ms) its lease ends. Every holder is a
 * lease of its own: it is extended and released alone, and a holder whose time has
 * passed no longer counts (the scripts drop it before counting), so a crashed holder
 * frees its place one lease after its last extension, whatever the others do. When
 * the last holder leaves, K and its set are deleted. The writer mark
 * (`writerKey(K)`, see ACQUIRE) keeps new shared holders out while an exclusive
 * acquisition waits for the current ones.
 */

/**
 * One attempt at a shared hold (any number of shared holders, no exclusive one) or a
 * semaphore permit (at most `limit` holders) on every key at once, or none.
 *
 * KEYS         as ACQUIRE: lock keys, holders sets, writer marks, (fence marks)
 * ARGV[1]      the holder's token
 * ARGV[2]      lease length, ms
 * ARGV[3]      fence-mark TTL, ms; '0': no fencing
 * ARGV[4]      's' (shared) or the semaphore's limit
 * ARGV[5]      the marker of that kind (`arl1.shared`, `arl1.sem.<limit>`)
 * Returns      {1, fence or false, room} when the holder was added on every key (fence
 *              as ACQUIRE); room: how many more holders a semaphore admits now (1 for
 *              a shared lock), so the caller wakes a local waiter only when one fits.
 *              {0, ms, i} when key i does not admit it now: held exclusively (ms: that
 *              holder's remaining lease, -1 no TTL), a semaphore at its limit (ms:
 *              until its first holder's lease ends), or, for a shared hold, an
 *              exclusive acquisition waiting (ms: the writer mark's TTL).
 *              {-1, i, kind, limit} when key i is held as another kind ('exclusive',
 *              'shared', 'semaphore' with its limit) or a semaphore with another limit;
 *              nothing was changed.
 * Errors       WRONGTYPE / NOTALOCK as ACQUIRE.
 * Replays      a token already among a key's holders counts as added (lease re-armed).
 * Waiting mark a key that keeps the attempt out gets '!' (as ACQUIRE); a writer mark
 *              on a free key gets it instead, and the writer's token inherits it.
 */
export const ACQUIRE_HOLDER = typedScript<AcquireRequest, AttemptResult>(
  'acquire-holder',
  `${LUA_OURS}${LUA_KIND}
local fenced = ARGV[3] ~= '0'
local n = #KEYS / (fenced and 4 or 3)
local token, ms = ARGV[1], tonumber(ARGV[2])
local shared = ARGV[4] == 's'
local limit = shared and 0 or tonumber(ARGV[4])
local now = nowMs()
local function mark(key, v)
  if not marked(v) and redis.call('PTTL', key) > 0 then redis.call('APPEND', key, '!') end
end
-- First every key is checked (nothing but expired holders and waiting marks is
-- written), then the holder is added to all of them: all or nothing.
local vals, room = {}, 1
for i = 1, n do
  local K, H, W = KEYS[i], KEYS[n + i], KEYS[2 * n + i]
  local v = redis.pcall('GET', K)
  if type(v) == 'table' and v.err then
    return redis.error_reply('WRONGTYPE lock key ' .. K .. ' holds a non-string value, not a lock')
  end
  vals[i] = v
  local kind, lim = nil, 0
  local holders = 0
  if v then
    kind, lim = kindOf(v)
    if not kind then return ${luaNotALock('K')} end
    if kind == 'x' then
      if not shared then return {-1, i, 'exclusive', 0} end
      local pttl = redis.call('PTTL', K)
      if pttl > 0 and #v == ${TOKEN_LENGTH} then redis.call('APPEND', K, '!') end
      return {0, pttl, i}
    end
    redis.call('ZREMRANGEBYSCORE', H, '-inf', now)
    holders = redis.call('ZCARD', H)
  end
  if holders > 0 then
    if shared and kind ~= 's' then return {-1, i, 'semaphore', lim} end
    if not shared and kind == 's' then return {-1, i, 'shared', 0} end
    if not shared and lim ~= limit then return {-1, i, 'semaphore', lim} end
  end
  if not shared then
    room = limit - holders - 1
    -- At the limit, unless this very request was delivered twice (then it counts as added).
    if holders >= limit and not redis.call('ZSCORE', H, token) then
      mark(K, v)
      local first = redis.call('ZRANGE', H, 0, 0, 'WITHSCORES')
      return {0, math.max(0, tonumber(first[2]) - now), i}
    end
  else
    local wait = redis.call('PTTL', W)
    if wait > 0 and not (holders > 0 and redis.call('ZSCORE', H, token)) then
      -- An exclusive acquisition waits for the current holders: queue behind it.
      if v then
        mark(K, v)
      else
        local w = redis.call('GET', W)
        if not marked(w) then redis.call('SET', W, w .. '!', 'KEEPTTL') end
      end
      return {0, wait, i}
    end
  end
end
for i = 1, n do
  local K, H = KEYS[i], KEYS[n + i]
  local v = vals[i]
  if not v then
    redis.call('DEL', H)
    redis.call('SET', K, ARGV[5], 'PX', ms)
    redis.call('ZADD', H, now + ms, token)
    redis.call('PEXPIRE', H, ms)
  else
    if marked(v) then
      if v ~= ARGV[5] .. '!' then redis.call('SET', K, ARGV[5] .. '!', 'KEEPTTL') end
    elseif v ~= ARGV[5] then
      redis.call('SET', K, ARGV[5], 'KEEPTTL')
    end
    redis.call('ZADD', H, now + ms, token)
    -- The key and its set expire no earlier than their longest holder (the set may
    -- just have been re-created by ZADD, after its last entries expired).
    arm(K, H, ms)
  end
end
if not fenced then return {1, false, room} end
local t = redis.call('TIME')
local fence = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 3 * n + 1, 4 * n do
  local m = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if m >= fence then fence = m + 1 end
end
local s = string.format('%.0f', fence)
for i = 3 * n + 1, 4 * n do redis.call('SET', KEYS[i], s, 'PX', ARGV[3]) end
return {1, s, room}
`,
  (request) => {
    const mode = request.mode ?? SHARED
    return {
      keys: companionKeys(request.keys, request.fencing),
      args: [
        request.token,
        String(request.lifetimeMs),
        request.fencing ? String(FENCE_MARK_TTL_MS) : '0',
        mode.kind === 'shared' ? 's' : String(mode.limit),
        markerOf(mode),
      ],
    }
  },
  decodeAttempt, // same reply shapes as ACQUIRE
)

/** The release script body for holders; only the publishing command differs between modes. */
function releaseHolderSource(publish: 'PUBLISH' | 'SPUBLISH'): string {
  return `${LUA_OURS}${LUA_KIND}${LUA_RELEASE_CHANNEL}
local n = #KEYS / 2
local removed = 0
local heard = 0
for i = 1, n do
  local K, H = KEYS[i], KEYS[n + i]
  local v = redis.pcall('GET', K)
  if type(v) == 'table' then
    if not string.find(v.err, '^WRONGTYPE') then return v end
    v = false
  end
  local kind = v and kindOf(v)
  if kind == 's' or kind == 'n' then
    local was = redis.call('ZREM', H, ARGV[1])
    removed = removed + was
    -- Expired entries left behind keep the key only until its TTL (acquisitions and
    -- extensions drop them). An entry already dropped (was = 0) by one of those still
    -- lets its holder's release delete a key left empty and wake whoever waits.
    local empty = redis.call('ZCARD', H) == 0
    if empty then redis.call('DEL', K, H) end
    -- Marked: someone waits for this key (a permit, or the last shared holder's exit).
    if marked(v) and (was == 1 or empty) then
      heard = heard + redis.call('${publish}', releaseChannel(K), ARGV[2])
    end
  end
end
if heard == 0 then return removed end
return {removed, heard}
`
}

function encodeReleaseHolder({ keys, token, publisherId }: ReleaseRequest) {
  return { keys: [...keys, ...keys.map(holdersKey)], args: [token, publisherId] }
}

function releaseHolderScript(
  name: string,
  publish: 'PUBLISH' | 'SPUBLISH',
): TypedScript<ReleaseRequest, ReleaseResult> {
  return typedScript(name, releaseHolderSource(publish), encodeReleaseHolder, decodeRelease)
}

/**
 * Removes one holder (its token) from a shared lock's or semaphore's keys and, when
 * someone waits, announces it; the last holder's exit deletes the key and its set.
 *
 * KEYS[1..n]   lock keys; KEYS[n+1..2n] their holders sets
 * ARGV[1]      the holder's token
 * ARGV[2]      message published (the releasing Locker's id) on each key's release
 *              channel (named by the script, see LUA_RELEASE_CHANNEL)
 * Returns      removed (an integer) when nobody heard, else {removed, receivers}:
 *              keys from whose holders set the token was removed
 *              (an entry past its lease that no acquisition or extension dropped yet counts too: the
 *              caller's own deadline says whether it was still held), and subscribers
 *              that heard about it. A key of another kind or type is not touched.
 */
export const RELEASE_HOLDER = releaseHolderScript('release-holder', 'PUBLISH')

/** {@link RELEASE_HOLDER} announcing with SPUBLISH, for Redis Cluster. */
export const RELEASE_HOLDER_SHARDED = releaseHolderScript('release-holder-sharded', 'SPUBLISH')
