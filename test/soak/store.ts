import type { Redis } from 'ioredis'

/**
 * The protected resources, kept on a separate Redis that no fault ever touches (no
 * proxy, never paused), so that everything it records is ground truth:
 *
 * - a counter per lock key, updated by a deliberately non-atomic read, sleep, write:
 *   two holders at once lose an update;
 * - a fenced register per lock key that refuses a write carrying a lower fence than
 *   the highest it has accepted, the way the README tells users to protect a
 *   resource from a paused holder.
 */
export function storeKeys(run: string, key: string) {
  const base = `soak:${run}:${key}`
  return {
    counter: `${base}:counter`,
    fence: `${base}:fence`,
    data: `${base}:data`,
    rejected: `${base}:rejected`,
    accepted: `${base}:accepted`,
  }
}

/**
 * KEYS: fence, data, rejected, accepted; ARGV: fence (decimal), payload.
 * Returns {1 accepted | 0 rejected, stored fence before the call}.
 * Equal fences are accepted because a fence is unique per acquisition of a key:
 * equal means the same grant writing again (one grant writes once per round),
 * lower means an older grant, i.e. a stale writer.
 */
const FENCED_WRITE = `
local stored = redis.call('GET', KEYS[1])
local f = tonumber(ARGV[1])
if stored == false or f >= tonumber(stored) then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[2])
  redis.call('INCR', KEYS[4])
  return {1, stored or '0'}
end
redis.call('INCR', KEYS[3])
return {0, stored}
`

export interface FencedResult {
  accepted: boolean
  stored: string
}

export async function fencedWrite(
  store: Redis,
  run: string,
  key: string,
  fence: bigint,
  payload: string,
): Promise<FencedResult> {
  const k = storeKeys(run, key)
  const reply = (await store.eval(
    FENCED_WRITE,
    4,
    k.fence,
    k.data,
    k.rejected,
    k.accepted,
    fence.toString(),
    payload,
  )) as [number, string]
  return { accepted: Number(reply[0]) === 1, stored: String(reply[1]) }
}

/** What the store holds for one lock key at the end of a run. */
export interface StoreState {
  counter: number
  fence: string | null
  rejected: number
  accepted: number
}

export async function readStore(store: Redis, run: string, key: string): Promise<StoreState> {
  const k = storeKeys(run, key)
  const [counter, fence, rejected, accepted] = await store.mget(k.counter, k.fence, k.rejected, k.accepted)
  return {
    counter: Number(counter ?? 0),
    fence: fence ?? null,
    rejected: Number(rejected ?? 0),
    accepted: Number(accepted ?? 0),
  }
}
