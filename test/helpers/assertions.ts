import assert from 'node:assert/strict'
import { LockError } from '../../src/index.js'

/** Rejects unless `p` rejects with a LockError of `code`; returns the error. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<LockError> {
  try {
    await p
  } catch (err) {
    assert.ok(err instanceof LockError, `expected a LockError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return err
  }
  assert.fail(`expected rejection with ${code}`)
}
