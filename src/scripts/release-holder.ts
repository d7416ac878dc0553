import { holdersKey, LUA_RELEASE_CHANNEL, queueKey } from '../internal/keys.js'
import { LUA_KIND, LUA_OURS } from './acquire.js'
import { LUA_QUEUE_ENTRY } from './holders.js'
import { decodeRelease, type ReleaseRequest, type ReleaseResult } from './release.js'
import { msText, type TypedScript, typedScript } from './script.js'

// The release of a shared holder or a semaphore permit (see holders.ts for the layout).

/** The release script body for holders; only the publishing command differs between modes. */
function releaseHolderSource(publish: 'PUBLISH' | 'SPUBLISH'): string {
  return `${LUA_OURS}${LUA_KIND}${LUA_RELEASE_CHANNEL}${LUA_QUEUE_ENTRY}
local limit = tonumber(ARGV[3] or '') or 0
local qid = ARGV[4] ~= '' and ARGV[4] or nil
local succ = ARGV[5] or ''
local n = #KEYS / (limit > 0 and 3 or 2)
local removed = 0
local heard = 0
local granted = false
-- Announcements made, those that named the Lockers the free permits go to, those that
-- named this one, and the ms until the first of the named entries runs out.
local announced, targeted, named, expires = 0, 0, 0, nil
local function announce(i, onlyIfFree)
  local msg = ARGV[2]
  local selfOnly = false
  if limit > 0 then
    -- When the arrival queue holds at least as many live entries as there are free
    -- permits, the message names their Lockers: only they need to attempt.
    local now = nowMs()
    local free = limit - redis.call('ZCOUNT', KEYS[n + i], '(' .. now, '+inf')
    -- A waiter leaving a semaphore at its limit, or a permit handed on, frees nothing
    -- new: nobody need attempt unless permits are free.
    if onlyIfFree and free <= 0 then return end
    if free > 0 then
      local raw = redis.call('ZRANGE', KEYS[2 * n + i], 0, -1)
      local ids, soon = {}, nil
      for j = 1, #raw do
        local id, ends = entryOf(raw[j])
        if ends >= now then
          ids[#ids + 1] = id
          soon = math.min(soon or ends, ends)
          if id == ARGV[2] then named = named + 1 end
          if #ids == free then break end
        end
      end
      if #ids == free then
        -- The others attempt again once the named entries run out (their Lockers died).
        local ms = math.max(1, soon - now)
        expires = math.min(expires or ms, ms)
        msg = msg .. ' ' .. string.format('%d', ms) .. ' ' .. table.concat(ids, ' ')
        targeted = targeted + 1
        selfOnly = #ids == 1 and ids[1] == ARGV[2]
      end
    end
  end
  announced = announced + 1
  -- Only the releasing Locker goes next: its reply tells it, nobody else need hear.
  if not selfOnly then heard = heard + redis.call('${publish}', releaseChannel(KEYS[i]), msg) end
end
-- Hands the released permit of key i to the releasing Locker's next waiter (token succ)
-- when no other Locker waits for the key (no live entry of another Locker in its arrival
-- queue). Not merely when this Locker is first: a permit handed on locally takes a round
-- trip less than one claimed from another process, so the Locker releasing most would
-- hand on most and crowd the others out. Its place in the queue is then given up (or
-- taken again, 'm'). Returns how many permits are still free after it, or false.
local function grant(i, v)
  local K, H, Q = KEYS[i], KEYS[n + i], KEYS[2 * n + i]
  local now = nowMs()
  local free = limit - redis.call('ZCOUNT', H, '(' .. now, '+inf')
  if free <= 0 then return false end
  local raw = redis.call('ZRANGE', Q, 0, -1)
  local mine = nil
  for j = 1, #raw do
    local id, ends = entryOf(raw[j])
    if ends >= now then
      if id ~= ARGV[2] then return false end
      mine = raw[j]
    end
  end
  local ms, qttl = tonumber(ARGV[6]), tonumber(ARGV[8])
  redis.call('ZADD', H, now + ms, succ)
  if mine then redis.call('ZREM', Q, mine) end
  local more = ARGV[7] == 'm'
  if more then
    redis.call('ZADD', Q, now, ARGV[2] .. '|' .. (now + qttl))
    if redis.call('PTTL', Q) < qttl then redis.call('PEXPIRE', Q, qttl) end
  end
  -- More of this Locker's waiters queued: the new holder's release must announce itself.
  if more and not marked(v) then redis.call('SET', K, v .. '!', 'KEEPTTL') end
  arm(K, H, ms)
  return free - 1
end
if qid then
  -- A waiting Locker leaves the keys' arrival queues: whoever queued after it may go now.
  for i = 1, n do
    local Q = KEYS[2 * n + i]
    local raw = redis.call('ZRANGE', Q, 0, -1)
    local left = false
    for j = 1, #raw do
      if entryOf(raw[j]) == qid then
        redis.call('ZREM', Q, raw[j])
        left = true
      end
    end
    if left and #raw > 1 then announce(i, true) end
  end
end
for i = 1, ARGV[1] == '' and 0 or n do
  local K, H = KEYS[i], KEYS[n + i]
  local v = redis.pcall('GET', K)
  if type(v) == 'table' then
    if not string.find(v.err, '^WRONGTYPE') then return v end
    v = false
  end
  local kind, lim = nil, 0
  if v then kind, lim = kindOf(v) end
  if kind == 's' or kind == 'n' then
    local was = redis.call('ZREM', H, ARGV[1])
    -- Handed over: the permits still free after it (false: not handed over).
    local left = false
    if succ ~= '' and n == 1 and kind == 'n' and lim == limit then
      if was == 1 then
        left = grant(i, v)
      elseif redis.call('ZSCORE', H, succ) then
        -- This very release delivered twice (a resend after a reconnect): its first run
        -- handed the permit over (and announced); answer as it did, or the permit would
        -- belong to nobody.
        was, left = 1, 0
      end
    end
    removed = removed + was
    if left then
      granted = true
      -- Permits free besides the one handed on (not claimed yet, or never announced):
      -- announced again, or they could stay free while this Locker's holders hand theirs on.
      if left > 0 and marked(v) then announce(i, true) end
    else
      -- Expired entries left behind keep the key only until its TTL (acquisitions and
      -- extensions drop them). An entry already dropped (was = 0) by one of those still
      -- lets its holder's release delete a key left empty and wake whoever waits.
      local empty = redis.call('ZCARD', H) == 0
      if empty then redis.call('DEL', K, H) end
      -- Marked: someone waits for this key (a permit, or the last shared holder's exit).
      if marked(v) and (was == 1 or empty) then announce(i) end
    end
  end
end
if granted then
  -- What became of the permits still free: 0 none, 1 others named, 2 this Locker named, 3 anyone.
  local tag = 0
  if announced > 0 then
    if targeted < announced then tag = 3 elseif named > 0 then tag = 2 else tag = 1 end
  end
  return {removed, heard, tag, expires or 0, 1}
end
if targeted == announced and announced > 0 then
  if named > 0 then return {removed, heard, 2} end
  if heard > 0 then return {removed, heard, 1, expires} end
end
if heard == 0 then return removed end
return {removed, heard}
`
}

function encodeReleaseHolder({ keys, token, publisherId, mode, leaveQueue, successor }: ReleaseRequest) {
  const holders = keys.map(holdersKey)
  // A semaphore's release names the Lockers queued first (see announce): its queues follow.
  if (mode?.kind !== 'semaphore') return { keys: [...keys, ...holders], args: [token, publisherId] }
  const args = [token, publisherId, String(mode.limit)]
  if (successor !== undefined && keys.length === 1) {
    args.push(
      leaveQueue ?? '',
      successor.token,
      msText(successor.lifetimeMs),
      successor.more ? 'm' : '',
      String(successor.queueTtlMs),
    )
  } else if (leaveQueue !== undefined) args.push(leaveQueue)
  return { keys: [...keys, ...holders, ...keys.map(queueKey)], args }
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
 * KEYS[1..n]   lock keys; KEYS[n+1..2n] their holders sets; a semaphore's (ARGV[3]):
 *              KEYS[2n+1..3n] their arrival queues
 * ARGV[1]      the holder's token; '' for none (only leaving the queues)
 * ARGV[2]      the releasing Locker's id, the message published on each key's release
 *              channel (named by the script, see LUA_RELEASE_CHANNEL); for a semaphore
 *              whose arrival queue has at least as many live entries as free permits,
 *              followed by the ms until the first of their entries runs out and the
 *              ids of the Lockers queued first that take them (one space before
 *              each): only they need to attempt, the others once that time is up
 * ARGV[3]      a semaphore's limit (absent for a shared lock: no queues)
 * ARGV[4]      optional: a Locker id whose arrival-queue entries are removed (a
 *              waiting Locker giving up); announced when others queued behind it and
 *              a permit is free; '' for none
 * ARGV[5..8]   optional, a semaphore of one key: the hand-over to the releasing
 *              Locker's next waiter: its token, its lease (ms), 'm' when more of the
 *              Locker's waiters stay behind it ('' otherwise), the queue entry's TTL
 *              (ms). When the token was released and no other Locker is queued for
 *              the key (see grant), the successor is added as a holder in
 *              the same call and the Locker's queue entry is dropped ('m': taken
 *              again at the back); permits still free are announced again (they
 *              were not claimed yet, or an expiry freed them silently) and the reply
 *              is {removed, receivers, tag, ms, 1}, tag telling what became of them:
 *              0 none free, 1 others named (ms as below), 2 this Locker named, 3
 *              announced to anyone. Delivered twice, the release finds its successor
 *              a holder already and answers the hand-over again.
 * Returns      removed (an integer) when nobody heard, else {removed, receivers} or,
 *              when every announcement named the Lockers that go next,
 *              {removed, receivers, 1, ms} when the releasing one was not among them
 *              (its own waiters need not attempt before ms, when the first named entry
 *              runs out), {removed, receivers, 2} when it was:
 *              keys from whose holders set the token was removed
 *              (an entry past its lease that no acquisition dropped yet counts too: the
 *              caller's own deadline says whether it was still held), and subscribers
 *              that heard about it. A key of another kind or type is not touched.
 */
export const RELEASE_HOLDER = releaseHolderScript('release-holder', 'PUBLISH')

/** {@link RELEASE_HOLDER} announcing with SPUBLISH, for Redis Cluster. */
export const RELEASE_HOLDER_SHARDED = releaseHolderScript('release-holder-sharded', 'SPUBLISH')
