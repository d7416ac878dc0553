import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  AcquireTimeoutError,
  BackendError,
  InvalidArgumentError,
  LockError,
  LockerClosedError,
  LockLostError,
  type LockLostReason,
} from '../../src/errors.js'

function assertLockError(err: LockError, name: string, code: string): void {
  assert.ok(err instanceof LockError)
  assert.ok(err instanceof Error)
  assert.equal(err.name, name)
  assert.equal(err.code, code)
  assert.equal(typeof err.message, 'string')
  assert.ok(err.message.length > 0)
  assert.ok(err.stack?.startsWith(`${name}: `), `stack starts with the name: ${err.stack}`)
  assert.equal(String(err).split(':')[0], name)
}

describe('errors', () => {
  test('LockError is the base class and keeps code and cause', () => {
    const cause = new Error('root')
    const err = new LockError('ERR_LOCK_BACKEND', 'boom', { cause })
    assertLockError(err, 'LockError', 'ERR_LOCK_BACKEND')
    assert.equal(err.message, 'boom')
    assert.equal(err.cause, cause)
    assert.equal(new LockError('ERR_LOCK_CLOSED', 'x').cause, undefined)
    assert.equal('cause' in new LockError('ERR_LOCK_CLOSED', 'x'), false)
  })

  test('InvalidArgumentError', () => {
    const err = new InvalidArgumentError('lifetimeMs', 'lifetimeMs must be positive; received 0')
    assertLockError(err, 'InvalidArgumentError', 'ERR_LOCK_INVALID_ARGUMENT')
    assert.equal(err.argument, 'lifetimeMs')
    assert.equal(err.message, 'lifetimeMs must be positive; received 0')
    assert.ok(err instanceof InvalidArgumentError)
  })

  test('AcquireTimeoutError carries keys, waitedMs and attempts', () => {
    const err = new AcquireTimeoutError(['a', 'b'], 1234.4, 3)
    assertLockError(err, 'AcquireTimeoutError', 'ERR_LOCK_ACQUIRE_TIMEOUT')
    assert.deepEqual(err.keys, ['a', 'b'])
    assert.equal(err.waitedMs, 1234.4)
    assert.equal(err.attempts, 3)
    assert.match(err.message, /"a", "b"/)
    assert.match(err.message, /1234 ms/)
    assert.match(err.message, /3 attempts/)
    assert.match(new AcquireTimeoutError(['a'], 0, 1).message, /\(1 attempt\)/)
  })

  test('AcquireTimeoutError shortens long key lists in its message', () => {
    const err = new AcquireTimeoutError(['k1', 'k2', 'k3', 'k4', 'k5'], 10, 1)
    assert.match(err.message, /"k1", "k2", "k3" and 2 more/)
    assert.doesNotMatch(err.message, /k4/)
    assert.equal(err.keys.length, 5)
  })

  test('LockLostError carries keys, reason and cause for every reason', () => {
    const reasons: LockLostReason[] = ['expired', 'stolen', 'unreachable', 'abandoned', 'closed']
    const texts = new Set<string>()
    for (const reason of reasons) {
      const cause = new Error(`cause of ${reason}`)
      const err = new LockLostError(['job'], reason, { cause })
      assertLockError(err, 'LockLostError', 'ERR_LOCK_LOST')
      assert.equal(err.reason, reason)
      assert.deepEqual(err.keys, ['job'])
      assert.equal(err.cause, cause)
      assert.match(err.message, /^lock on "job" was lost: /)
      texts.add(err.message)
    }
    assert.equal(texts.size, reasons.length, 'each reason has its own text')
    assert.equal(new LockLostError(['job'], 'expired').cause, undefined)
  })

  test('BackendError carries the operation and cause', () => {
    const cause = new Error('ECONNRESET')
    const err = new BackendError('extend', 'extend failed: ECONNRESET', { cause })
    assertLockError(err, 'BackendError', 'ERR_LOCK_BACKEND')
    assert.equal(err.operation, 'extend')
    assert.equal(err.cause, cause)
    assert.equal(err.message, 'extend failed: ECONNRESET')
  })

  test('LockerClosedError', () => {
    const err = new LockerClosedError()
    assertLockError(err, 'LockerClosedError', 'ERR_LOCK_CLOSED')
    assert.equal(err.message, 'the Locker is closed')
  })

  test('names are own string literals, not inherited from the constructor name alone', () => {
    const errors: LockError[] = [
      new InvalidArgumentError('x', 'm'),
      new AcquireTimeoutError(['k'], 1, 1),
      new LockLostError(['k'], 'closed'),
      new BackendError('connect', 'm'),
      new LockerClosedError(),
    ]
    for (const err of errors) {
      assert.equal(Object.hasOwn(err, 'name'), true)
      assert.equal(err.name, err.constructor.name)
    }
  })
})
