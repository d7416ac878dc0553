import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import util from 'node:util'
import { RequestError } from '@valkey/valkey-glide'
import { ReplyError } from 'ioredis'
import { ErrorReply } from 'redis'
import { sanitizeError, toBackendError } from '../../src/backends/script-runner.js'
import { BackendError, LockLostError } from '../../src/errors.js'

const TOKEN = 'arl1.Zm9vYmFyYmF6cXV4cXV1eA'
const OTHER = 'arl1.b3RoZXJ0b2tlbm90aGVyMQ'

/** Everything util.inspect shows of `v`, hidden properties and getters included. */
function shown(v: unknown): string {
  return util.inspect(v, { depth: Number.POSITIVE_INFINITY, showHidden: true, getters: true })
}

/** An ioredis reply error as ioredis 6 rejects with: the failed command on it. */
function ioredisError(message: string, args: string[]): Error {
  const err = new ReplyError(message) as Error & { command?: unknown }
  err.command = { name: 'evalsha', args }
  return err
}

describe('sanitizeError: client errors without the command they were for', () => {
  test("ioredis' command (with the tokens among its args) is dropped; class, name, message, stack kept", () => {
    const err = ioredisError("NOPERM this user has no permissions to run the 'evalsha' command", [
      'a'.repeat(40),
      '1',
      'lock:a',
      TOKEN,
    ])
    const copy = sanitizeError(err) as Error
    assert.notEqual(copy, err)
    assert.ok(copy instanceof ReplyError)
    assert.ok(copy instanceof Error)
    assert.equal(copy.name, err.name)
    assert.equal(copy.message, err.message)
    assert.equal(copy.stack, err.stack)
    assert.equal(Object.hasOwn(copy, 'command'), false)
    assert.ok(!shown(copy).includes(TOKEN), shown(copy))
    // The original is left as it was.
    assert.ok(shown(err).includes(TOKEN))
  })

  test('the classes of node-redis and GLIDE survive, and so do their messages', () => {
    const reply = sanitizeError(new ErrorReply('NOPERM no permissions')) as Error
    assert.ok(reply instanceof ErrorReply)
    assert.equal(reply.message, 'NOPERM no permissions')
    // GLIDE keeps `message` as an own field and names errors by their constructor.
    const glide = sanitizeError(new RequestError('An error was signalled by the server: - ResponseError: x'))
    assert.ok(glide instanceof RequestError)
    assert.equal((glide as Error).name, 'RequestError')
    assert.equal((glide as Error).message, 'An error was signalled by the server: - ResponseError: x')
  })

  test("a socket error's code, errno, syscall, address and port are kept; objects on it are not", () => {
    const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), {
      code: 'ECONNREFUSED',
      errno: -111,
      syscall: 'connect',
      address: '127.0.0.1',
      port: 1,
      args: [TOKEN],
      previousErrors: [ioredisError('x', [TOKEN])],
    })
    const copy = sanitizeError(err) as typeof err
    assert.deepEqual(
      { code: copy.code, errno: copy.errno, syscall: copy.syscall, address: copy.address, port: copy.port },
      { code: 'ECONNREFUSED', errno: -111, syscall: 'connect', address: '127.0.0.1', port: 1 },
    )
    assert.equal(Object.hasOwn(copy, 'args'), false)
    assert.equal(Object.hasOwn(copy, 'previousErrors'), false)
    assert.ok(!shown(copy).includes(TOKEN))
  })

  test('cause chains and AggregateError errors are sanitized all the way down; a cycle ends', () => {
    const inner = ioredisError('inner', [TOKEN])
    const middle = new Error('middle', { cause: inner })
    const aggregate = new AggregateError([middle, ioredisError('second', [OTHER])], 'all failed')
    const top = new Error('top', { cause: aggregate })
    const copy = sanitizeError(top) as Error
    const text = shown(copy)
    assert.ok(!text.includes(TOKEN) && !text.includes(OTHER), text)
    const agg = copy.cause as AggregateError
    assert.ok(agg instanceof AggregateError)
    assert.equal(agg.errors.length, 2)
    assert.equal(((agg.errors[0] as Error).cause as Error).message, 'inner')
    assert.ok((agg.errors[0] as Error).cause instanceof ReplyError)

    const loop = ioredisError('loop', [TOKEN]) as Error & { cause?: unknown }
    loop.cause = loop
    const looped = sanitizeError(loop)
    assert.ok(!shown(looped).includes(TOKEN))
  })

  test("Redis' echo of an unknown command's arguments is cut from message and stack", () => {
    const message = `ERR unknown command 'evalsha', with args beginning with: '${'a'.repeat(40)}' '1' 'lock:a' '${TOKEN}' `
    const copy = sanitizeError(ioredisError(message, [TOKEN])) as Error
    assert.equal(copy.message, "ERR unknown command 'evalsha', with args beginning with: [redacted]")
    assert.ok(copy.stack?.includes('with args beginning with: [redacted]'))
    assert.ok(!shown(copy).includes(TOKEN))
  })

  test('the secrets given (8 characters or more) are cut from every message; short ones are not', () => {
    const err = new Error(`script failed for ${TOKEN} after 10000 ms`, { cause: new Error(`again ${TOKEN}`) })
    const copy = sanitizeError(err, [TOKEN, '10000']) as Error
    assert.equal(copy.message, 'script failed for [redacted] after 10000 ms')
    assert.equal((copy.cause as Error).message, 'again [redacted]')
  })

  test('non-Error values: strings redacted, other primitives as they are, objects become Errors', () => {
    assert.equal(sanitizeError(`x ${TOKEN}`, [TOKEN]), 'x [redacted]')
    assert.equal(sanitizeError(42), 42)
    assert.equal(sanitizeError(undefined), undefined)
    const obj = sanitizeError({ message: 'odd', command: { args: [TOKEN] } })
    assert.ok(obj instanceof Error)
    assert.equal(obj.message, 'odd')
    assert.ok(!shown(obj).includes(TOKEN))
  })

  test('an error whose properties cannot be read becomes a plain Error; it never throws', () => {
    const hostile = new Error('x')
    Object.defineProperty(hostile, 'message', {
      get() {
        throw new Error('no')
      },
    })
    const copy = sanitizeError(hostile)
    assert.ok(copy instanceof Error)
    assert.match(copy.message, /could not be read/)
  })

  test('a sanitized copy is not copied again', () => {
    const copy = sanitizeError(ioredisError('x', [TOKEN]))
    assert.equal(sanitizeError(copy), copy)
  })
})

describe('toBackendError', () => {
  test('wraps a client error: the operation, its sanitized message and a sanitized cause', () => {
    const message = `ERR unknown command 'evalsha', with args beginning with: 'sha' '1' 'k' '${TOKEN}' `
    const err = toBackendError('extend', ioredisError(message, ['sha', '1', 'k', TOKEN]), [TOKEN])
    assert.ok(err instanceof BackendError)
    assert.equal(err.operation, 'extend')
    assert.equal(
      err.message,
      "extend failed: ERR unknown command 'evalsha', with args beginning with: [redacted]",
    )
    assert.ok(err.cause instanceof ReplyError)
    assert.ok(!shown(err).includes(TOKEN), shown(err))
  })

  test('passes a BackendError on as itself, its raw cause sanitized in place', () => {
    const ours = new BackendError('acquire', 'acquire failed: x', { cause: ioredisError('x', [TOKEN]) })
    assert.equal(toBackendError('acquire', ours), ours)
    assert.ok(ours.cause instanceof ReplyError)
    assert.ok(!shown(ours).includes(TOKEN))
  })

  test('our own errors deeper in a chain keep their identity and fields', () => {
    const lost = new LockLostError(['k'], 'unreachable', { cause: ioredisError('x', [TOKEN]) })
    const err = toBackendError('release', new Error('outer', { cause: lost }))
    const cause = (err.cause as Error).cause
    assert.equal(cause, lost)
    assert.equal(lost.reason, 'unreachable')
    assert.ok(!shown(err).includes(TOKEN))
  })
})
