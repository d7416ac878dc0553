import { LUA_RELEASE_CHANNEL } from '../internal/keys.js'
import type { HoldMode } from './acquire.js'
import { type ScriptArgs, type TypedScript, typedScript, unexpectedReply } from './script.js'

/** Deletes the keys that still hold `token`. */
export interface ReleaseRequest {
  readonly keys: readonly string[]
  readonly token: string
  /** Published on each release channel: the releasing Locker's id (its own subscriber skips it). */
  readonly publisherId: string
  /** How the keys are held; exclusive when absent (a holder of a shared lock or semaphore uses RELEASE_HOLDER). */
  readonly mode?: HoldMode | undefined
  /**
   * A semaphore's waiting Locker that gives up its place: its id, removed from the
   * keys' arrival queues (RELEASE_HOLDER of a semaphore only; with an empty token
   * nothing else is done).
   */
  readonly leaveQueue?: string | undefined
  /**
   * A semaphore of one key (RELEASE_HOLDER): the releasing Locker's next waiter, which
   * the released permit goes to in the same call when the key's arrival queue lets this
   * Locker have one now (see {@link ReleaseResult.handedOver}).
   */
  readonly successor?: Successor | undefined
}

/** The waiter a semaphore's released permit may be handed to (see ReleaseRequest.successor). */
export interface Successor {
  /** The token it holds the permit with. */
  readonly token: string
  readonly lifetimeMs: number
  /** More of the Locker's waiters stay behind it: the Locker keeps a place in the queue. */
  readonly more: boolean
  /** The TTL of that place (ms), as an attempt's ArrivalQueue.ttlMs. */
  readonly queueTtlMs: number
}

/** Outcome of a release. */
export interface ReleaseResult {
  /** Keys deleted by this call. */
  readonly removed: number
  /** Subscribers (of any process, ours included) that received the release messages. */
  readonly receivers: number
  /**
   * Set when the announcement named the Lockers a semaphore's free permits go to
   * (RELEASE_HOLDER): 'others' when the releasing one was not among them (its own
   * waiters need not attempt before {@link ReleaseResult.othersExpireInMs}), 'us' when
   * it was.
   */
  readonly named?: 'others' | 'us'
  /** With `named: 'others'`: ms until the first named Locker's queue entry runs out. */
  readonly othersExpireInMs?: number
  /**
   * The permit went to the request's successor, whose lease began no earlier than the
   * request was sent. Permits still free were announced again: `named` tells to whom,
   * `moreFree` that they were announced to anyone; neither: none is free.
   */
  readonly handedOver?: true
  /** With `handedOver`: permits are still free, announced to anyone. */
  readonly moreFree?: true
}

/** The release script body; only the publishing command differs between modes. */
function releaseSource(publish: 'PUBLISH' | 'SPUBLISH'): string {
  return `${LUA_RELEASE_CHANNEL}
local n = 0
local heard = 0
for i = 1, #KEYS do
  local v = redis.pcall('GET', KEYS[i])
  if type(v) == 'table' then
    -- Another type: not ours, left alone (the other keys are still released).
    if not string.find(v.err, '^WRONGTYPE') then return v end
    v = false
  end
  if v == ARGV[1] or v == ARGV[1] .. '!' then
    redis.call('DEL', KEYS[i])
    n = n + 1
    -- Marked: someone waits for this key.
    if v ~= ARGV[1] then heard = heard + redis.call('${publish}', releaseChannel(KEYS[i]), ARGV[2]) end
  end
end
if heard == 0 then return n end
return {n, heard}
`
}

function encodeRelease({ keys, token, publisherId }: ReleaseRequest): ScriptArgs {
  return { keys, args: [token, publisherId] }
}

/** Nobody heard a release: the common reply, an integer. */
const UNHEARD = [0, 1, 2, 3].map((removed) => Object.freeze({ removed, receivers: 0 }))

/**
 * Decodes a release reply (RELEASE and RELEASE_HOLDER share the shape): the number of
 * keys removed when nobody heard the announcement (an integer is the cheapest reply to
 * send and parse, and the usual one), else {removed, receivers}.
 */
export function decodeRelease(reply: unknown): ReleaseResult {
  if (!Array.isArray(reply)) {
    // A number, a bigint, or a numeric string (ioredis `stringNumbers`, a node-redis
    // type mapping): the keys removed, nobody heard.
    const removed =
      typeof reply === 'number' ||
      typeof reply === 'bigint' ||
      (typeof reply === 'string' && /^\d+$/.test(reply))
        ? Number(reply)
        : Number.NaN
    if (!Number.isInteger(removed)) throw unexpectedReply('release', reply)
    return UNHEARD[removed] ?? { removed, receivers: 0 }
  }
  const removed = Number(reply[0])
  const receivers = Number(reply[1])
  if (reply.length < 3) return { removed, receivers }
  const tag = Number(reply[2])
  if (reply.length >= 5 && Number(reply[4]) === 1) {
    // Handed over to the successor (RELEASE_HOLDER); tag: what became of permits still free.
    if (tag === 0) return { removed, receivers, handedOver: true }
    if (tag === 1) {
      return { removed, receivers, handedOver: true, named: 'others', othersExpireInMs: Number(reply[3]) }
    }
    if (tag === 2) return { removed, receivers, handedOver: true, named: 'us' }
    if (tag === 3) return { removed, receivers, handedOver: true, moreFree: true }
    throw unexpectedReply('release', reply)
  }
  if (tag !== 1) return { removed, receivers, named: 'us' }
  return { removed, receivers, named: 'others', othersExpireInMs: Number(reply[3]) }
}

function releaseScript(
  name: string,
  publish: 'PUBLISH' | 'SPUBLISH',
): TypedScript<ReleaseRequest, ReleaseResult> {
  return typedScript(name, releaseSource(publish), encodeRelease, decodeRelease)
}

/**
 * Deletes the keys that still hold our token and announces each deletion that
 * someone waits for (the key carried the waiting mark, see `ACQUIRE`). Also the
 * operator's forced release (`async-redis-lock release --force`), with the token it
 * just read: a holder that changed in between is left alone.
 *
 * KEYS[1..n]   lock keys
 * ARGV[1]      owner token
 * ARGV[2]      message published on release (the releasing Locker's id), on each
 *              key's release channel (named by the script, see LUA_RELEASE_CHANNEL)
 * Returns      deleted, an integer, when nobody heard an announcement; else
 *              {deleted, receivers}: how many keys were deleted (0: nothing of ours was
 *              left) and how many subscribers got the announcements (waiters exist).
 *              A key of another type is not ours: left alone, like another owner's.
 * Cluster      PUBLISH is broadcast over the cluster bus to every node; the cluster
 *              backend uses {@link RELEASE_SHARDED} instead.
 */
export const RELEASE = releaseScript('release', 'PUBLISH')

/**
 * {@link RELEASE} for Redis Cluster: announces with SPUBLISH (Redis ≥ 7), which stays
 * within the shard that owns the channel's slot instead of flooding the cluster bus.
 *
 * KEYS, ARGV   as RELEASE; every key and channel in one slot (a script may only
 *              publish to a channel of a slot its node serves)
 * Returns      {deleted, receivers}, as RELEASE; receivers counts this shard's subscribers.
 */
export const RELEASE_SHARDED = releaseScript('release-sharded', 'SPUBLISH')
