import { randomFillSync } from 'node:crypto'

const TOKEN_BYTES = 16
/** Characters in a token: 16 bytes in base64url, unpadded. */
export const TOKEN_LENGTH = Math.ceil((TOKEN_BYTES * 4) / 3)
// One CSPRNG call fills the pool for 256 tokens: a call per token costs several
// microseconds (a syscall each), a noticeable share of an uncontended acquisition.
const pool = Buffer.alloc(TOKEN_BYTES * 256)
let offset = pool.length

/** A fresh owner token: 128 random bits from the system CSPRNG, base64url-encoded (22 chars). */
export function newToken(): string {
  if (offset + TOKEN_BYTES > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const token = pool.toString('base64url', offset, offset + TOKEN_BYTES)
  offset += TOKEN_BYTES
  return token
}
