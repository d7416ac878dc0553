import { holdersKey } from '../internal/keys.js'
import { HOLDERS_KEY_SLACK, type HoldMode, isHolder as holds, LUA_KIND, LUA_OURS } from './acquire.js'
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
 * set while its entry is there (an acquisition drops entries past their end before
 * counting; one that none dropped yet lost its place to nobody and is re-armed), and
 * the key's TTL raised to cover it.
 *
 * KEYS         the keys of every lease, lease after lease: an exclusive lease's lock
 *              keys; a holder's lock key and holders set, key after key
 * ARGV[1]      number of leases m
 * ARGV[2..]    per lease: token, lease length in ms, number of keys, 'x' (exclusive)
 *              or 'h' (holder)
 * Returns      m integers: 1 extended, 0 a key was gone (for a holder: its entry
 *              gone), -1 a key has another owner (another value, or a value
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
      -- An entry past its end that no acquisition dropped yet is re-armed: nobody took
      -- its place (see EXTEND_HOLDERS_UNIFORM).
      if not redis.call('ZSCORE', KEYS[i + 1], token) then status = 0 break end
      now = now or nowMs()
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
 * {@link EXTEND} for a batch of holders (shared locks, semaphore permits) of one key
 * each and one lease length: a third of the arguments, and per run of holders of the
 * same key (the caller groups the batch by key) one read of the key, one ZADD for all of
 * them and one PTTL; about every sixth time, a re-arm. This is the script that keeps
 * thousands of held permits alive, so it does the least it can per key: 3 Redis calls
 * (GET, ZADD, PTTL) for all of the key's holders in the batch.
 *
 * The key is read on every extension: a key deleted or evicted alone (its set left as it
 * was) may have been taken at once by an exclusive `SET NX PX`, which cannot touch the
 * set; only reading the key tells its holders (-1) at their next extension.
 *
 * An entry past its end that no acquisition dropped yet is re-armed like a live one:
 * nobody took its place (every acquisition that counts holders drops such entries
 * first, and then this ZADD XX cannot re-create them), so its holder, still within its
 * own local deadline, keeps it. EXTEND does the same.
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
-- As text, once: a Lua number passed to redis.call is formatted anew at every call,
-- a measurable share of this script's time.
local ends = string.format('%.0f', nowMs() + n)
local rearm = string.format('%.0f', ${HOLDERS_KEY_SLACK} * n)
-- Per lock key, read once (a key may come back in a later run): 0 gone, -1 another kind
-- or owner, 1 holders; and whether its TTL was checked. Per value (nearly every key of a
-- batch holds the same marker): holders or not.
local seen, armed, kinds = {}, {}, {}
local a, o = 2, 1
for r = 1, #KEYS / 2 do
  local K, H = KEYS[2 * r - 1], KEYS[2 * r]
  local c = tonumber(ARGV[a])
  local state = seen[K]
  if state == nil then
    local v = redis.pcall('GET', K)
    if not v then
      state = 0
    elseif type(v) == 'table' then
      if not string.find(v.err, '^WRONGTYPE') then return v end
      state = -1 -- another type: another owner
    else
      state = kinds[v]
      if state == nil then
        local kind = kindOf(v)
        state = (kind == 's' or kind == 'n') and 1 or -1
        kinds[v] = state
      end
    end
    seen[K] = state
  end
  if state ~= 1 then
    for i = 1, c do out[o + i - 1] = state end
  else
    -- Every holder of the run in one ZADD XX, which never re-creates an entry (one or two
    -- holders, the common runs, without a table; longer runs in slices: a Lua call takes
    -- only so many arguments).
    local changed
    if c == 1 then
      changed = redis.call('ZADD', H, 'XX', 'CH', ends, ARGV[a + 1])
    elseif c == 2 then
      changed = redis.call('ZADD', H, 'XX', 'CH', ends, ARGV[a + 1], ends, ARGV[a + 2])
    else
      changed = 0
      for from = 1, c, 200 do
        local za = {'XX', 'CH'}
        for i = from, math.min(c, from + 199) do
          za[#za + 1] = ends
          za[#za + 1] = ARGV[a + i]
        end
        changed = changed + redis.call('ZADD', H, unpack(za))
      end
    end
    local any = changed > 0
    if changed == c then
      for i = 1, c do out[o + i - 1] = 1 end
    else
      -- CH does not count an entry whose end did not change (two extensions in one
      -- millisecond): then ask for each whether it is there.
      for i = 1, c do
        if redis.call('ZSCORE', H, ARGV[a + i]) then
          out[o + i - 1] = 1
          any = true
        else
          out[o + i - 1] = 0
        end
      end
    end
    if any and not armed[K] then
      armed[K] = true
      -- The set's TTL is never below the key's, and the key's is never below its
      -- longest holder's: a key re-armed is re-armed with its set, one PTTL read.
      if redis.call('PTTL', K) < n then
        redis.call('PEXPIRE', K, rearm)
        redis.call('PEXPIRE', H, rearm)
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
