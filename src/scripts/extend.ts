import { holdersKey } from '../internal/keys.js'
import { type HoldMode, isHolder as holds, LUA_KIND, LUA_OURS } from './acquire.js'
import { msText, typedScript, unexpectedReply } from './script.js'

/** One lease in an extension batch. */
export interface ExtendRequest {
  readonly keys: readonly string[]
  readonly token: string
  readonly lifetimeMs: number
  /** How the keys are held; exclusive when absent. */
  readonly mode?: HoldMode | undefined
}

/** True for a lease that is one holder among several (a shared lock or a semaphore). */
function isHolder(lease: ExtendRequest): boolean {
  return holds(lease.mode)
}

/** Per lease: 1 extended, 0 a key was gone, -1 a key has another owner. */
export type ExtendStatus = 1 | 0 | -1

/** One status per lease; the caller checks that the count matches the batch it sent. */
function decodeStatuses(reply: unknown): ExtendStatus[] {
  if (!Array.isArray(reply)) throw unexpectedReply('extend', reply)
  return reply.map((v) => Number(v) as ExtendStatus)
}

/**
 * Extends a batch of leases in one call. Only a key that still holds the lease's
 * token (with or without the waiting mark) is re-armed; a missing key is never
 * re-created. A holder of a shared lock or semaphore is re-armed in the key's holders
 * set while its entry there is unexpired, and the key's TTL raised to cover it.
 *
 * KEYS         the keys of every lease, lease after lease: an exclusive lease's lock
 *              keys; a holder's lock key and holders set, key after key
 * ARGV[1]      number of leases m
 * ARGV[2..]    per lease: token, lease length in ms, number of keys, 'x' (exclusive)
 *              or 'h' (holder)
 * Returns      m integers: 1 extended, 0 a key was gone (for a holder: its entry
 *              gone or expired), -1 a key has another owner (another value, or a value
 *              of another type: that key alone is affected, the other leases of the
 *              batch are extended as usual)
 * Errors       any error of reading a key other than WRONGTYPE (the whole batch)
 * Cluster      one call per slot group; every key of the call in one slot.
 *
 * A multi-key lease is extended only if all its keys are still ours; otherwise
 * nothing of it is touched and the client releases what is left.
 */
export const EXTEND = typedScript<readonly ExtendRequest[], ExtendStatus[]>(
  'extend',
  `${LUA_OURS}${LUA_KIND}
local out = {}
local k = 1
local a = 2
local now = nil
-- Per lock key, once per batch: its value, and the longest TTL it was given.
local seen, armed = {}, {}
for l = 1, tonumber(ARGV[1]) do
  local token, ms, nk, holder = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3] == 'h'
  local status = 1
  local step = holder and 2 or 1
  for i = k, k + step * nk - 1, step do
    local v = seen[KEYS[i]]
    if v == nil then
      v = redis.pcall('GET', KEYS[i])
      if type(v) == 'table' then
        if not string.find(v.err, '^WRONGTYPE') then return v end
        v = true -- another type: another owner
      end
      if holder then seen[KEYS[i]] = v end
    end
    if holder then
      if not v then status = 0 break end
      local kind = v ~= true and kindOf(v)
      if kind ~= 's' and kind ~= 'n' then status = -1 break end
      now = now or nowMs()
      local untilMs = tonumber(redis.call('ZSCORE', KEYS[i + 1], token) or '0')
      if untilMs <= now then status = 0 break end
    elseif v == true then
      status = -1 break
    elseif v ~= token and v ~= token .. '!' then
      if v then status = -1 break end
      status = 0
    end
  end
  if status == 1 then
    local n = tonumber(ms)
    for i = k, k + step * nk - 1, step do
      if holder then
        redis.call('ZADD', KEYS[i + 1], 'XX', now + n, token)
        -- The key and its set expire together, no earlier than their longest holder.
        if (armed[KEYS[i]] or 0) < n then
          armed[KEYS[i]] = n
          arm(KEYS[i], KEYS[i + 1], n)
        end
      else
        redis.call('PEXPIRE', KEYS[i], ms)
      end
    end
  end
  out[l] = status
  k = k + step * nk
  a = a + 4
end
return out
`,
  (batch) => {
    const keys: string[] = []
    const args: string[] = [String(batch.length)]
    for (const lease of batch) {
      const holder = isHolder(lease)
      if (holder) for (const key of lease.keys) keys.push(key, holdersKey(key))
      else keys.push(...lease.keys)
      args.push(lease.token, msText(lease.lifetimeMs), String(lease.keys.length), holder ? 'h' : 'x')
    }
    return { keys, args }
  },
  decodeStatuses,
)

/**
 * {@link EXTEND} for the common batch: every lease has one key and the same lease
 * length. A third of the arguments (no length and key count per lease), which is most
 * of the work of extending thousands of leases, on both ends.
 *
 * KEYS         one lock key per lease
 * ARGV[1]      lease length in ms, for all
 * ARGV[2..]    the token of each lease, in KEYS order
 * Returns      one integer per lease, as EXTEND (a key of another type: -1)
 * Errors       as EXTEND
 */
export const EXTEND_UNIFORM = typedScript<readonly ExtendRequest[], ExtendStatus[]>(
  'extend-uniform',
  `
local out = {}
local ms = ARGV[1]
for i = 1, #KEYS do
  local v = redis.pcall('GET', KEYS[i])
  if type(v) == 'table' then
    if not string.find(v.err, '^WRONGTYPE') then return v end
    v = true -- another type: another owner
  end
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
  (batch) => {
    const keys: string[] = new Array(batch.length)
    const args: string[] = new Array(batch.length + 1)
    args[0] = msText(batch[0]?.lifetimeMs ?? 0)
    for (let i = 0; i < batch.length; i++) {
      const lease = batch[i] as ExtendRequest
      keys[i] = lease.keys[0] as string
      args[i + 1] = lease.token
    }
    return { keys, args }
  },
  decodeStatuses,
)

/**
 * What an extension gives a holders' lock key and set when it re-arms them: twice the
 * lease. A key then needs re-arming every third extension or so instead of at each one
 * (two PEXPIREs saved per key most of the time). It changes nothing about when a holder
 * frees its place (its entry's end does); only a crashed set of holders leaves its key
 * behind up to two leases instead of one.
 */
export const HOLDERS_KEY_SLACK = 2

/**
 * {@link EXTEND} for a batch of holders (shared locks, semaphore permits) of one key
 * each and one lease length: a third of the arguments, and per run of holders of the
 * same key (the caller groups the batch by key) one read of the key, one ZADD for all of
 * them and at most one re-arm.
 *
 * KEYS         per run: the lock key and its holders set
 * ARGV[1]      lease length in ms, for all
 * ARGV[2..]    per run: the number of holders c, then their c tokens
 * Returns      one integer per lease, in ARGV order, as EXTEND
 * Errors       as EXTEND
 */
export const EXTEND_HOLDERS_UNIFORM = typedScript<readonly ExtendRequest[], ExtendStatus[]>(
  'extend-holders-uniform',
  `${LUA_OURS}${LUA_KIND}
local out = {}
local n = tonumber(ARGV[1])
local now = nowMs()
local ends = now + n
-- Per lock key, read once: 0 gone, -1 another kind or owner, 1 holders (pruned).
local seen, armed = {}, {}
local a, o = 2, 1
for r = 1, #KEYS / 2 do
  local K, H = KEYS[2 * r - 1], KEYS[2 * r]
  local c = tonumber(ARGV[a])
  local state = seen[K]
  if state == nil then
    local v = redis.pcall('GET', K)
    if type(v) == 'table' then
      if not string.find(v.err, '^WRONGTYPE') then return v end
      state = -1 -- another type: another owner
    elseif not v then
      state = 0
    else
      local kind = kindOf(v)
      if kind == 's' or kind == 'n' then
        -- Holders whose lease has ended are dropped (as an acquisition drops them):
        -- an entry past its end is not revived by the ZADD XX below.
        redis.call('ZREMRANGEBYSCORE', H, '-inf', now)
        state = 1
      else
        state = -1
      end
    end
    seen[K] = state
  end
  if state ~= 1 then
    for i = 1, c do out[o + i - 1] = state end
  else
    -- Every holder of the run in one ZADD (in slices: a Lua call takes only so many arguments).
    local changed = 0
    for from = 1, c, 200 do
      local za = {'XX', 'CH'}
      for i = from, math.min(c, from + 199) do
        za[#za + 1] = ends
        za[#za + 1] = ARGV[a + i]
      end
      changed = changed + redis.call('ZADD', H, unpack(za))
    end
    local any = false
    for i = 1, c do
      -- CH does not count an entry whose end did not change (two extensions in one
      -- millisecond): then ask for each whether it is there.
      if changed == c or redis.call('ZSCORE', H, ARGV[a + i]) then
        out[o + i - 1] = 1
        any = true
      else
        out[o + i - 1] = 0
      end
    end
    if any and not armed[K] then
      armed[K] = true
      -- The set's TTL is never below the key's, and the key's is never below its
      -- longest holder's: a key re-armed is re-armed with its set, one PTTL read.
      if redis.call('PTTL', K) < n then
        redis.call('PEXPIRE', K, ${HOLDERS_KEY_SLACK} * n)
        redis.call('PEXPIRE', H, ${HOLDERS_KEY_SLACK} * n)
      end
    end
  end
  o = o + c
  a = a + c + 1
end
return out
`,
  (batch) => {
    const keys: string[] = []
    const args: string[] = [msText(batch[0]?.lifetimeMs ?? 0)]
    /** Where the current run's count goes: the tokens after it are the run. */
    let countAt = -1
    const closeRun = () => {
      if (countAt >= 0) args[countAt] = String(args.length - countAt - 1)
    }
    let last: string | undefined
    for (const lease of batch) {
      const key = lease.keys[0] as string
      if (key !== last) {
        closeRun()
        keys.push(key, holdersKey(key))
        countAt = args.push('') - 1
        last = key
      }
      args.push(lease.token)
    }
    closeRun()
    return { keys, args }
  },
  decodeStatuses,
)

/**
 * Which compact script can carry `batch`: 'exclusive' ({@link EXTEND_UNIFORM}) or
 * 'holders' ({@link EXTEND_HOLDERS_UNIFORM}) when every lease has one key, the same
 * lease length and the same side; null otherwise (the general EXTEND).
 */
export function uniformKind(batch: readonly ExtendRequest[]): 'exclusive' | 'holders' | null {
  const first = batch[0]
  if (first === undefined) return null
  const ms = first.lifetimeMs
  const holder = isHolder(first)
  for (const l of batch) if (l.keys.length !== 1 || l.lifetimeMs !== ms || isHolder(l) !== holder) return null
  return holder ? 'holders' : 'exclusive'
}

/** True when {@link EXTEND_UNIFORM} can carry `batch`: exclusive leases of one key, one lease length. */
export function isUniform(batch: readonly ExtendRequest[]): boolean {
  return uniformKind(batch) === 'exclusive'
}
