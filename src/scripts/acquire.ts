import { fenceKey, holdersKey, writerKey } from '../internal/keys.js'
import { LUA_TOKEN_PATTERN, STORED_TOKEN, TOKEN_LENGTH } from '../internal/token.js'
import type { LockKind } from '../types.js'
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

/** The value a shared lock's key holds (its holders are in the key's holders set). */
export const SHARED_MARKER = 'arl1.shared'
/** What a semaphore's key holds before its limit, e.g. `arl1.sem.5`. */
export const SEMAPHORE_MARKER = 'arl1.sem.'

/** How a lock is held: one exclusive holder, any number of shared holders, or at most `limit` permits. */
export type HoldKind = LockKind

/** The kind of an acquisition and, for a semaphore, its limit (0 for the other kinds). */
export interface HoldMode {
  readonly kind: HoldKind
  readonly limit: number
}

export const EXCLUSIVE: HoldMode = Object.freeze({ kind: 'exclusive', limit: 0 })
export const SHARED: HoldMode = Object.freeze({ kind: 'shared', limit: 0 })

/** True for one holder among several (a shared lock or a semaphore); absent means exclusive. */
export function isHolder(mode: HoldMode | undefined): boolean {
  return mode !== undefined && mode.kind !== 'exclusive'
}

/** The value stored in the key of a shared lock or semaphore of `mode`. */
export function markerOf(mode: HoldMode): string {
  return mode.kind === 'shared' ? SHARED_MARKER : `${SEMAPHORE_MARKER}${mode.limit}`
}

/**
 * How many leases a holders' lock key and its set get whenever they are armed (created
 * or re-armed because a holder's new lease end reached past them). A key then needs
 * re-arming about every sixth extension instead of at each one, and not at the first
 * extension after it was created (two PEXPIREs and a GET saved per key most of the
 * time). It changes nothing about when a holder frees its place (its entry's end does,
 * and an acquisition drops entries past their end); only holders that all crashed
 * leave their key and set behind up to four leases instead of one, free for anyone (of
 * any kind) meanwhile.
 */
export const HOLDERS_KEY_SLACK = 4

/**
 * Lua (after {@link LUA_OURS}): `kindOf(v)` tells what a lock key's string value is:
 * 'x' an exclusive holder's token, 's' a shared lock, 'n' and the limit a semaphore,
 * nil a value that is not ours. `marked(v)` is true when it carries the waiting mark.
 * `nowMs()` is the server's clock in ms. `arm(K, H, ms)` gives a lock key at least `ms`
 * of TTL ({@link HOLDERS_KEY_SLACK} leases when it had less) and its holders set at
 * least the key's (the set may just have been re-created).
 */
export const LUA_KIND = `
local function marked(v)
  return string.byte(v, #v) == 33
end
local function kindOf(v)
  local base = marked(v) and string.sub(v, 1, #v - 1) or v
  if base == '${SHARED_MARKER}' then return 's', 0 end
  local lim = string.match(base, '^arl1%.sem%.(%d+)$')
  if lim then return 'n', tonumber(lim) end
  if ours(v) then return 'x', 0 end
  return nil, 0
end
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function arm(K, H, ms)
  local kt = redis.call('PTTL', K)
  if kt < ms then
    kt = ${HOLDERS_KEY_SLACK} * ms
    redis.call('PEXPIRE', K, kt)
  end
  if redis.call('PTTL', H) < kt then redis.call('PEXPIRE', H, kt) end
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
  /** How the keys are held; exclusive when absent. */
  readonly mode?: HoldMode | undefined
  /**
   * How long the mark of an exclusive acquisition that waits for a shared lock's
   * holders lasts (new shared holders wait behind it); the waiter re-arms it with each
   * attempt that meets them, so it outlives the waiter by at most this much. 0: set
   * none (a single attempt, which will not wait). Default 2000.
   */
  readonly writerMarkMs?: number | undefined
  /**
   * Send the holders sets and writer marks too (ACQUIRE only): needed when the key may
   * be a shared lock or semaphore. Without them the script stays on the lock keys
   * alone (which matters on a cluster whose slot is migrating: a script over several
   * keys is refused with TRYAGAIN while they are split) and answers "needs
   * companions" if it meets such a key; the backend then runs it again with them.
   */
  readonly companions?: boolean | undefined
  /** A semaphore's arrival queue (ACQUIRE_HOLDER; absent: none, as on a quorum). */
  readonly queue?: ArrivalQueue | undefined
}

/**
 * How an attempt at a semaphore takes part in its key's arrival queue: free permits go
 * to the Lockers queued first, one entry per Locker (its waiters keep their own order).
 */
export interface ArrivalQueue {
  /** The Locker's id (its entry in the queue). */
  readonly id: string
  /** Turned away, take (or keep) a place in the queue: false for a single attempt, which will not wait. */
  readonly join: boolean
  /** The Locker has more waiters on the key: once admitted, it queues again at the back. */
  readonly more: boolean
  /**
   * How long the entry stays without a new attempt of its Locker (which refreshes it):
   * longer than the Locker's retry bound, so only a crashed Locker's entry runs out.
   */
  readonly ttlMs: number
}

/** Outcome of one acquisition attempt. */
export type AttemptResult =
  | {
      readonly acquired: true
      /** The fencing token; undefined without fencing. */
      readonly fence: bigint | undefined
      /** Shared locks and semaphores: how many more holders fit now (absent: the lock is exclusive). */
      readonly room?: number | undefined
    }
  | {
      readonly acquired: false
      /** How long until the blocking key may admit us, in ms (-1: no TTL). */
      readonly pttl: number
      /** Which key (index into the request's keys) blocked the attempt. */
      readonly blockedIndex: number
      /**
       * Set when the key is held as another kind (or a semaphore with another limit):
       * waiting would not help, the acquisition is rejected.
       */
      readonly conflict?: HoldMode | undefined
      /**
       * The key is a shared lock or semaphore: attempt again with
       * {@link AcquireRequest.companions} (at once when `pttl` is 0).
       */
      readonly companions?: true | undefined
    }

/** Default of {@link AcquireRequest.writerMarkMs}. */
export const WRITER_MARK_MS = 2000

/**
 * Takes every key of an exclusive lock at once or none of them and, when asked to,
 * issues a fencing token. Without fencing a single-key acquisition does not need this
 * script (a plain `SET NX PX` does it); it is used for several keys and after a plain
 * SET failed.
 *
 * KEYS[1..n]   lock keys; with companions KEYS[n+1..2n] their holders sets and
 *              KEYS[2n+1..3n] their writer marks; with fencing then their fence-mark
 *              keys (each companion in its lock key's slot)
 * ARGV[1]      owner token
 * ARGV[2]      lease length, ms
 * ARGV[3]      fence-mark TTL, ms; '0': no fencing (no fence-mark keys)
 * ARGV[4]      'full' (with companions) or 'light'
 * ARGV[5]      writer mark TTL, ms (see below); '0': set none (a single attempt)
 * Returns      {1, fence} when all keys were free and are now ours; fence is a decimal
 *              string: max(previous mark + 1, server TIME in µs), stored back as the
 *              mark. {1} without fencing.
 *              {0, pttl, i} when key i is held: by another owner's token (pttl: its
 *              remaining ms, -1 no TTL) or by shared holders (pttl: until the last of
 *              them expires).
 *              {0, pttl, i, 's'} the same for shared holders (attempt again with
 *              companions).
 *              {-1, i, kind, limit} when key i is a semaphore with holders: another kind
 *              of lock; nothing was changed.
 *              {2, i} without companions, when key i is a shared lock or semaphore:
 *              nothing was changed; run again with them.
 * Errors       WRONGTYPE when a lock key holds a non-string value; NOTALOCK when it
 *              holds a string that is not of our format (see {@link LUA_OURS}). Both
 *              say "not a lock"; keys taken before it are deleted again. Never contention.
 * Replays      a key already holding ARGV[1] counts as taken: tokens are unique per
 *              attempt, so only a resent copy of this same request (or of the plain
 *              SET that preceded it) can have set it.
 * Waiting mark a held key that blocks the attempt gets '!' appended to its value
 *              (once, and only with a TTL; a value not of our format is never written
 *              to), so its release knows someone waits and publishes. Every script that
 *              compares tokens accepts both forms. An unmarked release sends no message:
 *              nobody outside the holder's own Locker can be waiting (every waiter's
 *              failed attempt went through a script that marked the holder).
 * Shared keys  a key held by shared holders (see ACQUIRE_HOLDER) is taken once its
 *              holders set has no unexpired member; until then the attempt sets the
 *              writer mark (ARGV[5] ms), which keeps new shared holders out (writer
 *              preference). A successful acquisition with companions deletes the
 *              writer mark (only once every key is taken), and passes on its waiting
 *              mark (shared waiters) to the new token.
 * Cluster      all keys must share one slot; the caller checks before sending.
 *
 * Keys taken before a later one turns out to be held are deleted again inside the
 * script, which is atomic, so nobody can observe a partial acquisition.
 */
export const ACQUIRE = typedScript<AcquireRequest, AttemptResult>(
  'acquire',
  `${LUA_OURS}${LUA_KIND}
local fenced = ARGV[3] ~= '0'
local full = ARGV[4] == 'full'
local n = #KEYS / ((fenced and 2 or 1) + (full and 2 or 0))
local f = full and 3 * n or n
-- Keys taken over from a shared lock or semaphore that had waiters.
local waited = {}
for i = 1, n do
  local K = KEYS[i]
  local H, W = full and KEYS[n + i], full and KEYS[2 * n + i]
  if not redis.call('SET', K, ARGV[1], 'NX', 'PX', ARGV[2]) then
    local v = redis.pcall('GET', K)
    if v ~= ARGV[1] and v ~= ARGV[1] .. '!' then
      if type(v) == 'table' and v.err then
        for j = 1, i - 1 do redis.call('DEL', KEYS[j]) end
        return redis.error_reply('WRONGTYPE lock key ' .. K .. ' holds a non-string value, not a lock')
      end
      local kind, lim = kindOf(v)
      if not kind then
        for j = 1, i - 1 do redis.call('DEL', KEYS[j]) end
        return ${luaNotALock('K')}
      end
      local holders, now = 0, 0
      if kind ~= 'x' and not full then
        for j = 1, i - 1 do redis.call('DEL', KEYS[j]) end
        return {2, i}
      end
      if kind ~= 'x' then
        now = nowMs()
        redis.call('ZREMRANGEBYSCORE', H, '-inf', now)
        holders = redis.call('ZCARD', H)
      end
      if kind == 'n' and holders > 0 then
        for j = 1, i - 1 do redis.call('DEL', KEYS[j]) end
        return {-1, i, 'semaphore', lim}
      end
      if kind == 'x' or holders > 0 then
        for j = 1, i - 1 do redis.call('DEL', KEYS[j]) end
        local pttl = redis.call('PTTL', K)
        -- Mark the holder: someone waits, so its release must announce itself.
        if pttl > 0 and not marked(v) then redis.call('APPEND', K, '!') end
        -- Shared holders: keep newcomers out until this writer had its turn.
        if kind == 's' then
          if ARGV[5] ~= '0' then redis.call('SET', W, ARGV[1], 'PX', ARGV[5]) end
          -- Until the last holder's lease ends (the key itself may outlive it: see HOLDERS_KEY_SLACK).
          local last = redis.call('ZRANGE', H, -1, -1, 'WITHSCORES')
          return {0, math.max(0, tonumber(last[2]) - now), i, 's'}
        end
        return {0, pttl, i}
      end
      -- A shared lock or semaphore whose holders all expired: free.
      waited[i] = marked(v)
      redis.call('DEL', H)
      redis.call('SET', K, ARGV[1], 'PX', ARGV[2])
    else
      -- Already ours: this very request was delivered twice (a client resent it
      -- after a reconnect). Count it as taken rather than leave an orphan behind.
      redis.call('PEXPIRE', K, ARGV[2])
    end
  end
end
-- Every key is ours: only now end the writer marks (a failed attempt changes none).
if full then
  for i = 1, n do
    local w = redis.call('GET', KEYS[2 * n + i])
    if w then redis.call('DEL', KEYS[2 * n + i]) end
    -- Shared waiters were told about the key: this holder's release must tell them too.
    if (waited[i] or (w and marked(w))) and redis.call('GET', KEYS[i]) == ARGV[1] then
      redis.call('APPEND', KEYS[i], '!')
    end
  end
end
if not fenced then return {1} end
local now = redis.call('TIME')
local fence = tonumber(now[1]) * 1000000 + tonumber(now[2])
for i = f + 1, f + n do
  local mark = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if mark >= fence then fence = mark + 1 end
end
local s = string.format('%.0f', fence)
for i = f + 1, f + n do redis.call('SET', KEYS[i], s, 'PX', ARGV[3]) end
return {1, s}
`,
  ({ keys, token, lifetimeMs, fencing, writerMarkMs, companions }) => ({
    keys:
      companions === true ? companionKeys(keys, fencing) : fencing ? [...keys, ...keys.map(fenceKey)] : keys,
    args: [
      token,
      String(lifetimeMs),
      fencing ? String(FENCE_MARK_TTL_MS) : '0',
      companions === true ? 'full' : 'light',
      String(writerMarkMs ?? WRITER_MARK_MS),
    ],
  }),
  decodeAttempt,
)

/** The KEYS of an acquisition: lock keys, holders sets, writer marks, and fence marks with fencing. */
export function companionKeys(keys: readonly string[], fencing: boolean): string[] {
  const out = [...keys, ...keys.map(holdersKey), ...keys.map(writerKey)]
  if (fencing) for (const k of keys) out.push(fenceKey(k))
  return out
}

/** A success without fencing: also what a plain `SET NX PX` that set the key stands for. */
export const ACQUIRED: AttemptResult = Object.freeze({ acquired: true, fence: undefined })

/** Decodes an acquisition reply (ACQUIRE and ACQUIRE_HOLDER share its shapes). */
export function decodeAttempt(reply: unknown): AttemptResult {
  if (Array.isArray(reply)) {
    const [status, value, index] = reply as unknown[]
    if (Number(status) === 1 && reply.length === 1) return ACQUIRED
    if (Number(status) === 1 && reply.length === 3) {
      const fence = typeof value === 'string' || typeof value === 'number' ? BigInt(value) : undefined
      return { acquired: true, fence, room: Number(index) }
    }
    if (Number(status) === 1 && (typeof value === 'string' || typeof value === 'number')) {
      return { acquired: true, fence: BigInt(value) }
    }
    if (Number(status) === 0) {
      const blocked = { acquired: false, pttl: Number(value), blockedIndex: Number(index) - 1 } as const
      return reply[3] === 's' ? { ...blocked, companions: true } : blocked
    }
    if (Number(status) === 2 && reply.length === 2) {
      return { acquired: false, pttl: 0, blockedIndex: Number(value) - 1, companions: true }
    }
    if (Number(status) === -1) {
      const [, at, kind, limit] = reply as unknown[]
      const conflict: HoldMode =
        kind === 'shared' ? SHARED : kind === 'semaphore' ? { kind, limit: Number(limit) } : EXCLUSIVE
      return { acquired: false, pttl: -1, blockedIndex: Number(at) - 1, conflict }
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
