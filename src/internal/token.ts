import { randomBytes } from 'node:crypto'

/** A fresh owner token: 128 random bits from the system CSPRNG, base64url-encoded (22 chars). */
export function newToken(): string {
  return randomBytes(16).toString('base64url')
}
