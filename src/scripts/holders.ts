import { queueKey } from '../internal/keys.js'
import { TOKEN_LENGTH } from '../internal/token.js'
import {
  type AcquireRequest,
  type AttemptResult,
  companionKeys,
  decodeAttempt,
  FENCE_MARK_TTL_MS,
  HOLDERS_KEY_SLACK,
  LUA_KIND,
  LUA_OURS,
  luaNotALock,
  markerOf,
  SHARED,
} from './acquire.js'
import { msText, typedScript } from './script.js'

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
 * acquisition waits for the current ones. A semaphore's arrival queue
 * (`queueKey(K)`, a sorted set) orders the Lockers whose waiters were turned away:
 * member `<locker id>|<server ms the entry runs out>`, scored by arrival; each new
 * attempt of a queued Locker refreshes its entry, an entry that ran out (its Locker
 * crashed) is dropped, and free permits go to the Lockers queued first.
 */

/** `entryOf(e)`: an arrival-queue entry's Locker id and end (server ms). */
export const LUA_QUEUE_ENTRY = `
local function entryOf(e)
  local bar = string.find(e, '|', 1, true)
  if not bar then return '', 0 end
  return string.sub(e, 1, bar - 1), tonumber(string.sub(e, bar + 1)) or 0
end
`

/**
 * One attempt at a shared hold (any number of shared holders, no exclusive one) or a
 * semaphore permit (at most `limit` holders) on every key at once, or none.
 *
 * KEYS         as ACQUIRE: lock keys, holders sets, writer marks (a semaphore: its
 *              arrival queues instead), (fence marks)
 * ARGV[1]      the holder's token
 * ARGV[2]      lease length, ms
 * ARGV[3]      fence-mark TTL, ms; '0': no fencing
 * ARGV[4]      's' (shared) or the semaphore's limit
 * ARGV[5]      the marker of that kind (`arl1.shared`, `arl1.sem.<limit>`)
 * ARGV[6..8]   a semaphore's arrival queue (absent: none): the Locker's id; flags, 'j'
 *              join the queue when turned away, 'm' the Locker has more waiters (once
 *              admitted it queues again, at the back); the entry's TTL, ms
 * Returns      {1, fence or false, room} when the holder was added on every key (fence
 *              as ACQUIRE); room: how many more holders a semaphore admits now (1 for
 *              a shared lock; for a semaphore, less the Lockers queued before its
 *              next waiter), so the caller wakes a local waiter only when one fits.
 *              {0, ms, i} when key i does not admit it now: held exclusively (ms: that
 *              holder's remaining lease, -1 no TTL), a semaphore at its limit (ms:
 *              until its first holder's lease ends) or whose free permits go to
 *              Lockers queued before this one (ms: until the first of their entries
 *              runs out), or, for a shared hold, an exclusive acquisition waiting (ms:
 *              the writer mark's TTL).
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
  `${LUA_OURS}${LUA_KIND}${LUA_QUEUE_ENTRY}
local fenced = ARGV[3] ~= '0'
local n = #KEYS / (fenced and 4 or 3)
local token, ms = ARGV[1], tonumber(ARGV[2])
local shared = ARGV[4] == 's'
local limit = shared and 0 or tonumber(ARGV[4])
local now = nowMs()
local function mark(key, v)
  if not marked(v) and redis.call('PTTL', key) > 0 then redis.call('APPEND', key, '!') end
end
local qid, qflags, qttl = ARGV[6] or '', ARGV[7] or '', tonumber(ARGV[8] or '0')
-- A semaphore's arrival queue: the expiries of its live entries in order (entries that
-- ran out are dropped), this Locker's place (0-based) and entry, if it has one.
local function queued(Q)
  local raw = redis.call('ZRANGE', Q, 0, -1)
  local live, rank, entry = {}, nil, nil
  for j = 1, #raw do
    local e = raw[j]
    local id, ends = entryOf(e)
    if ends < now then
      redis.call('ZREM', Q, e)
    else
      if id == qid then rank, entry = #live, e end
      live[#live + 1] = ends
    end
  end
  return live, rank, entry
end
-- Takes a place at the back of the queue, or refreshes this Locker's entry where it is.
local function join(Q, entry)
  if not string.find(qflags, 'j', 1, true) then return end
  local at = now
  if entry then
    at = redis.call('ZSCORE', Q, entry)
    redis.call('ZREM', Q, entry)
  end
  redis.call('ZADD', Q, at, qid .. '|' .. (now + qttl))
  if redis.call('PTTL', Q) < qttl then redis.call('PEXPIRE', Q, qttl) end
end
-- First every key is checked (nothing but expired holders and waiting marks is
-- written), then the holder is added to all of them: all or nothing.
local vals, room = {}, 1
-- Per key, a semaphore's queue: this Locker's entry (false: none), and whether others wait.
local entries, waiting = {}, {}
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
    -- Turned away at the limit, or when the free permits go to Lockers queued before
    -- this one; unless this very request was delivered twice (then it counts as added).
    local live, rank, entry = {}, nil, nil
    if qid ~= '' then live, rank, entry = queued(W) end
    local full = holders >= limit
    local behind = not full and (rank or #live) >= limit - holders
    if (full or behind) and not (holders > 0 and redis.call('ZSCORE', H, token)) then
      if qid ~= '' then join(W, entry) end
      if v then mark(K, v) end
      if behind then
        -- Until the first of the entries queued ahead (that take the free permits) runs out.
        local soon = live[1]
        for j = 2, limit - holders do soon = math.min(soon, live[j]) end
        return {0, math.max(1, soon - now), i}
      end
      local first = redis.call('ZRANGE', H, 0, 0, 'WITHSCORES')
      return {0, math.max(0, tonumber(first[2]) - now), i}
    end
    -- Room left for another of this Locker's waiters: the permits past this one that
    -- no other queued Locker comes first for.
    room = limit - holders - 1 - (#live - (rank and 1 or 0))
    entries[i] = entry or false
    waiting[i] = #live > (rank and 1 or 0) or string.find(qflags, 'm', 1, true) ~= nil
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
  if entries[i] ~= nil and qid ~= '' then
    -- Admitted: out of the queue, or back in at its end for the Locker's next waiter.
    local Q = KEYS[2 * n + i]
    if entries[i] then redis.call('ZREM', Q, entries[i]) end
    if string.find(qflags, 'm', 1, true) then
      redis.call('ZADD', Q, now, qid .. '|' .. (now + qttl))
      if redis.call('PTTL', Q) < qttl then redis.call('PEXPIRE', Q, qttl) end
    end
  end
  -- Others queued for a permit: the new holder's release must announce itself.
  local bang = waiting[i] and '!' or ''
  if not v then
    -- The key and its set last HOLDERS_KEY_SLACK leases (its holders' entries end with theirs).
    local armMs = ${HOLDERS_KEY_SLACK} * ms
    redis.call('DEL', H)
    redis.call('SET', K, ARGV[5] .. bang, 'PX', armMs)
    redis.call('ZADD', H, now + ms, token)
    redis.call('PEXPIRE', H, armMs)
  else
    if marked(v) or bang ~= '' then
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
    const { queue } = request
    const keys = companionKeys(request.keys, request.fencing)
    const args = [
      request.token,
      String(request.lifetimeMs),
      request.fencing ? String(FENCE_MARK_TTL_MS) : '0',
      mode.kind === 'shared' ? 's' : String(mode.limit),
      markerOf(mode),
    ]
    if (mode.kind === 'semaphore' && queue !== undefined) {
      // A semaphore has no writer mark: its arrival queues take their place.
      const n = request.keys.length
      for (let i = 0; i < n; i++) keys[2 * n + i] = queueKey(request.keys[i] as string)
      args.push(queue.id, `${queue.join ? 'j' : ''}${queue.more ? 'm' : ''}`, msText(queue.ttlMs))
    }
    return { keys, args }
  },
  decodeAttempt, // same reply shapes as ACQUIRE
)
