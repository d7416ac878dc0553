import { InvalidArgumentError } from './errors.js'
import { isReserved, RESERVED } from './internal/keys.js'
import { describe } from './options.js'

/**
 * Checks and normalises the keys of one acquisition (prefix applied). A key whose full
 * name contains the companions' reserved namespace (see `internal/keys.ts`) is rejected:
 * it could be another key's fence mark.
 */
export function resolveKeys(keys: unknown, prefix: string): string[] {
  if (typeof keys === 'string' && keys.length > 0) {
    // The common case: one key, no array to walk.
    const full = prefix + keys
    if (isReserved(full)) throw reservedKey(0, full)
    return [full]
  }
  const list = typeof keys === 'string' ? [keys] : keys
  if (!Array.isArray(list)) {
    throw new InvalidArgumentError(
      'keys',
      `keys must be a non-empty string or a non-empty array of them; received ${describe(keys)}`,
    )
  }
  if (list.length === 0) {
    throw new InvalidArgumentError('keys', 'keys must not be an empty array; received []')
  }
  const seen = new Set<string>()
  const out: string[] = []
  for (const [i, key] of list.entries()) {
    if (typeof key !== 'string' || key.length === 0) {
      throw new InvalidArgumentError(
        'keys',
        `keys[${i}] must be a non-empty string; received ${describe(key)}`,
      )
    }
    if (seen.has(key)) {
      throw new InvalidArgumentError('keys', `keys must be distinct; ${JSON.stringify(key)} appears twice`)
    }
    seen.add(key)
    const full = prefix + key
    if (isReserved(full)) throw reservedKey(i, full)
    out.push(full)
  }
  return out
}

function reservedKey(i: number, full: string): InvalidArgumentError {
  return new InvalidArgumentError(
    'keys',
    `keys[${i}] must not contain ${JSON.stringify(RESERVED)}, the namespace reserved for the lock's own fence marks and release channels; received ${describe(full)}`,
  )
}

/** Checks the Locker-wide prefix; one that contains the companions' reserved namespace is rejected. */
export function resolvePrefix(prefix: unknown): string {
  if (prefix === undefined) return ''
  if (typeof prefix !== 'string') {
    throw new InvalidArgumentError('prefix', `prefix must be a string; received ${describe(prefix)}`)
  }
  if (isReserved(prefix)) {
    throw new InvalidArgumentError(
      'prefix',
      `prefix must not contain ${JSON.stringify(RESERVED)}, the namespace reserved for the lock's own fence marks and release channels; received ${describe(prefix)}`,
    )
  }
  return prefix
}
