/**
 * Names of the companion keys and channels that travel with a lock key.
 *
 * On a Redis Cluster a script may only touch keys of one hash slot, so each
 * companion must hash exactly like its lock key. Redis hashes only the first
 * non-empty `{...}` section of a key when there is one; otherwise the whole key.
 * So a key that has a hash tag keeps it and gets a suffix; a key without one is
 * wrapped in braces, which makes its whole text the tag. The rare key that has a
 * `}` but no valid tag cannot be wrapped; it gets a plain suffix (fine on a single
 * node; the cluster backend checks slots before sending anything).
 */

/** The hash tag Redis Cluster would use for `key`, or `undefined` when it hashes the whole key. */
export function hashTag(key: string): string | undefined {
  const open = key.indexOf('{')
  if (open === -1) return undefined
  const close = key.indexOf('}', open + 1)
  if (close === -1 || close === open + 1) return undefined
  return key.slice(open + 1, close)
}

function base(key: string): string {
  if (hashTag(key) !== undefined || key.includes('}')) return key
  return `{${key}}`
}

/** The key that stores the fencing high-water mark of `key`. */
export function fenceKey(key: string): string {
  return `${base(key)}:fence`
}

/** The pub/sub channel on which releases of `key` are announced. */
export function releaseChannel(key: string): string {
  return `${base(key)}:released`
}
