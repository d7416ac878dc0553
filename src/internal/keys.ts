/**
 * Names of the companion keys and channels that travel with a lock key: its fence
 * mark and its release channel.
 *
 * Three rules shape them:
 *
 * - **Under the key's own prefix.** A companion starts with the lock key itself (or,
 *   for a key with a `{` but no valid hash tag, with the part before that `{`), so
 *   whatever prefix the key has, its companions have it too: an ACL limited to
 *   `~app:*` / `&app:*` covers every key and channel of a Locker with prefix `app:`.
 *   The names depend on the full key only, never on how it splits into prefix and
 *   name, so every process (a Locker with another prefix, the CLI, which has none)
 *   finds the same fence mark and channel for the same key.
 * - **In the key's hash slot.** On a Redis Cluster a script may only touch keys of one
 *   slot. Redis hashes the first non-empty `{...}` section of a key when there is one,
 *   otherwise the whole key. A key that has a hash tag keeps it first and gets a
 *   suffix; a key without one gets its whole text as the tag of its companion, after
 *   the namespace. The rare key that has a `}` but no valid tag cannot be given
 *   itself as a tag; it gets a plain suffix (fine on a single node; the cluster
 *   backend rejects such keys before sending anything).
 * - **In a reserved namespace.** Every companion contains {@link RESERVED}, which no
 *   lock key may contain (`resolveKeys` rejects it), so a lock key never collides with
 *   a companion, and companions of distinct keys are distinct.
 *
 * Layout, for a lock key K:
 *
 * - K has a valid hash tag, or a `}` without one:   `K` NS kind
 * - otherwise:                                      `H` NS kind `:{K}`
 *   (H is K up to its first `{`, all of K when it has none)
 *
 * with NS = {@link RESERVED} (`"\0arl:"`) and kind `fence`, `holders`, `writer`, `queue` or `released`. For the prefix
 * `app:` and the key `x`: `app:x\0arl:fence:{app:x}` and `app:x\0arl:released:{app:x}`;
 * for `app:{x}`: `app:{x}\0arl:fence`.
 */

/**
 * The namespace of companion keys and channels: a NUL byte, then `arl:`. A lock key (the
 * prefix included) that contains it is rejected. Starting with a character that does not
 * occur again in it, it cannot overlap itself, so its first occurrence in a companion
 * is always where the lock key's part ends.
 */
export const RESERVED = '\u0000arl:'

/** The hash tag Redis Cluster would use for `key`, or `undefined` when it hashes the whole key. */
export function hashTag(key: string): string | undefined {
  const open = key.indexOf('{')
  if (open === -1) return undefined
  const close = key.indexOf('}', open + 1)
  if (close === -1 || close === open + 1) return undefined
  return key.slice(open + 1, close)
}

/** True when `key` (a full lock key, prefix included) lies in the companions' namespace. */
export function isReserved(key: string): boolean {
  return key.includes(RESERVED)
}

function companion(key: string, kind: string): string {
  if (hashTag(key) !== undefined || key.includes('}')) return `${key}${RESERVED}${kind}`
  const open = key.indexOf('{')
  const head = open === -1 ? key : key.slice(0, open)
  return `${head}${RESERVED}${kind}:{${key}}`
}

/** The key that stores the fencing high-water mark of `key` (a full lock key). */
export function fenceKey(key: string): string {
  return companion(key, 'fence')
}

/** The sorted set of a shared lock's or semaphore's holders (token → expiry, server ms). */
export function holdersKey(key: string): string {
  return companion(key, 'holders')
}

/**
 * A semaphore's arrival queue: the Lockers whose waiters were turned away, oldest first
 * (see ACQUIRE_HOLDER).
 */
export function queueKey(key: string): string {
  return companion(key, 'queue')
}

/** The mark of an exclusive acquisition waiting for a shared lock's holders to leave. */
export function writerKey(key: string): string {
  return companion(key, 'writer')
}

const RELEASED = 'released'

/** The pub/sub channel on which releases of `key` (a full lock key) are announced. */
export function releaseChannel(key: string): string {
  return companion(key, RELEASED)
}

/** {@link RESERVED} as Lua source text: its NUL written as an escape. */
const LUA_RESERVED = `\\0${RESERVED.slice(1)}`

/**
 * Lua: `releaseChannel(key)`, the same name as {@link releaseChannel} builds, so a
 * release script names the channel itself, and only when it publishes: the common
 * release (nobody waits) carries no channel argument.
 */
export const LUA_RELEASE_CHANNEL = `
local function releaseChannel(key)
  local open = string.find(key, '{', 1, true)
  if open then
    local close = string.find(key, '}', open + 1, true)
    if close and close > open + 1 then return key .. '${LUA_RESERVED}${RELEASED}' end
  end
  if string.find(key, '}', 1, true) then return key .. '${LUA_RESERVED}${RELEASED}' end
  local head = open and string.sub(key, 1, open - 1) or key
  return head .. '${LUA_RESERVED}${RELEASED}:{' .. key .. '}'
end
`
