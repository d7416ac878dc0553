import { randomFillSync } from 'node:crypto'

const TOKEN_BYTES = 16
/**
 * What every owner token starts with: the stored format's version. It makes the values
 * this library writes recognisable, so a script never mistakes (or marks) a value that
 * is not ours for a lock; 0.1.0's tokens (22 characters, no prefix) do not have it.
 */
export const TOKEN_PREFIX = 'arl1.'
/** Random characters in a token: 16 bytes in base64url, unpadded. */
const RANDOM_LENGTH = Math.ceil((TOKEN_BYTES * 4) / 3)
/** Characters in a token: the version prefix and 22 base64url characters (27). */
export const TOKEN_LENGTH = TOKEN_PREFIX.length + RANDOM_LENGTH
/** A token as stored: the prefix, 22 base64url characters, and the optional waiting mark `!`. */
export const STORED_TOKEN = new RegExp(`^arl1\\.[A-Za-z0-9_-]{${RANDOM_LENGTH}}!?$`)
/**
 * {@link STORED_TOKEN} as a Lua pattern, less the mark and the count (Lua patterns have
 * none): the scripts check the length first. Explicit ranges, not `%w`, which depends on
 * the server's locale.
 */
export const LUA_TOKEN_PATTERN = '^arl1%.[A-Za-z0-9_%-]+$'

// One CSPRNG call fills the pool for 256 tokens: a call per token costs several
// microseconds (a syscall each), a noticeable share of an uncontended acquisition.
const pool = Buffer.alloc(TOKEN_BYTES * 256)
let offset = pool.length

/**
 * A fresh owner token: `arl1.` and 128 random bits from the system CSPRNG,
 * base64url-encoded (27 characters in all).
 */
export function newToken(): string {
  if (offset + TOKEN_BYTES > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const token = TOKEN_PREFIX + pool.toString('base64url', offset, offset + TOKEN_BYTES)
  offset += TOKEN_BYTES
  return token
}

/** True when `stored` is a value of our format: a token, with or without the waiting mark. */
export function isStoredToken(stored: string): boolean {
  return STORED_TOKEN.test(stored)
}
