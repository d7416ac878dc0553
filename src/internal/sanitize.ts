import { BackendError, LockError } from '../errors.js'

/**
 * A BackendError for `operation` from whatever a client library threw, with a
 * sanitized copy of it as `cause` (see {@link sanitizeError}): a client's error
 * carries the command it failed with, and a lock command's arguments are owner
 * tokens. `secrets` (the call's arguments, when known) are also cut out of messages.
 * A BackendError is passed on as is, its `cause` sanitized in place.
 */
export function toBackendError(
  operation: BackendError['operation'],
  err: unknown,
  secrets: readonly string[] = NO_SECRETS,
): BackendError {
  if (err instanceof BackendError) return sanitizeError(err, secrets) as BackendError
  const cause = sanitizeError(err, secrets)
  const text = cause instanceof Error ? cause.message : String(cause)
  return new BackendError(operation, `${operation} failed: ${text}`, { cause })
}

const NO_SECRETS: readonly string[] = []

/** Own properties of a client error that tell what went wrong, never what was sent. */
const KEPT = ['name', 'code', 'errno', 'syscall', 'address', 'port'] as const

/** How deep `cause` / `errors` chains are followed; anything deeper is cut off. */
const MAX_DEPTH = 8

/** The sanitized copies (and our own errors already sanitized): never copied again. */
const sanitized = new WeakSet<object>()

/**
 * A copy of a client library's error fit to publish: what it is and what went wrong,
 * without the command it was for. ioredis puts the failed command on its errors
 * (`command: { name, args }`), and a lock command's arguments are owner tokens, the
 * capability to release or extend a lock; errors end up in diagnostics payloads,
 * logs and APM exporters.
 *
 * Kept: the prototype (so `instanceof` and the class name still work), `message` and
 * `stack` (with Redis' echo of the arguments, "with args beginning with: ...", and
 * every string of `secrets` of 8 characters or more replaced by `[redacted]`),
 * `name`, `code`, `errno`, `syscall`, `address` and `port` when they are the error's
 * own primitive values, and `cause` and `errors` (AggregateError), sanitized the same
 * way. Everything else is dropped: `command`, `args`, `previousErrors`, replies.
 * A non-Error object becomes an Error with its `message`; a string is redacted; other
 * primitives are returned as they are. Our own LockErrors are returned themselves,
 * with their `cause` sanitized in place. Never throws.
 */
export function sanitizeError(err: unknown, secrets: readonly string[] = NO_SECRETS): unknown {
  return sanitize(err, secrets.length === 0 ? NO_SECRETS : secrets.filter(isSecretLike), 0)
}

/** Arguments short enough to be counts or lease lengths are not cut out of text. */
function isSecretLike(arg: string): boolean {
  return typeof arg === 'string' && arg.length >= 8
}

function sanitize(err: unknown, secrets: readonly string[], depth: number): unknown {
  if (typeof err === 'string') return redact(err, secrets)
  if (typeof err !== 'object' || err === null) return err
  if (sanitized.has(err)) return err
  try {
    if (err instanceof LockError) {
      sanitized.add(err)
      // Ours: its message was built from sanitized text; its cause may be a client's.
      if (Object.hasOwn(err, 'cause')) {
        const cause = depth < MAX_DEPTH ? sanitize(err.cause, secrets, depth + 1) : undefined
        Object.defineProperty(err, 'cause', { value: cause, writable: true, configurable: true })
      }
      return err
    }
    if (!(err instanceof Error) && Object.prototype.toString.call(err) !== '[object Error]') {
      const message = (err as { message?: unknown }).message
      return marked(new Error(redact(typeof message === 'string' ? message : 'a non-Error value', secrets)))
    }
    return copyError(err as Error, secrets, depth)
  } catch {
    // A getter threw, or a Proxy refused: publish nothing of it.
    return marked(new Error('a Redis client error (its details could not be read)'))
  }
}

function copyError(err: Error, secrets: readonly string[], depth: number): Error {
  const copy = Object.create(Object.getPrototypeOf(err) as object | null) as Error
  hidden(copy, 'message', redact(String(err.message), secrets))
  if (typeof err.stack === 'string') hidden(copy, 'stack', redact(err.stack, secrets))
  for (const name of KEPT) {
    const own = Object.getOwnPropertyDescriptor(err, name)
    if (own === undefined || !('value' in own)) continue
    const value: unknown = own.value
    if (value !== null && typeof value === 'object') continue
    if (typeof value === 'function' || typeof value === 'symbol') continue
    Object.defineProperty(copy, name, {
      value: typeof value === 'string' ? redact(value, secrets) : value,
      enumerable: own.enumerable === true,
      writable: true,
      configurable: true,
    })
  }
  if (depth < MAX_DEPTH) {
    if (Object.hasOwn(err, 'cause')) hidden(copy, 'cause', sanitize(err.cause, secrets, depth + 1))
    const errors = (err as { errors?: unknown }).errors
    if (Object.hasOwn(err, 'errors') && Array.isArray(errors)) {
      hidden(
        copy,
        'errors',
        errors.slice(0, 100).map((e: unknown) => sanitize(e, secrets, depth + 1)),
      )
    }
  }
  return marked(copy)
}

function marked<T extends object>(err: T): T {
  sanitized.add(err)
  return err
}

/** A non-enumerable own property, as `message`, `stack` and `cause` are on native errors. */
function hidden(target: object, name: string, value: unknown): void {
  Object.defineProperty(target, name, { value, enumerable: false, writable: true, configurable: true })
}

/**
 * Redis echoes the first arguments of a command it does not know ("ERR unknown
 * command 'evalsha', with args beginning with: 'a3f…' '1' 'lock:a' '<token>'", as when
 * EVALSHA was renamed away); on one line, as Redis replaces line breaks in it.
 */
const ECHOED_ARGS = /(with args beginning with:)[^\r\n]*/g

/** `text` without echoed command arguments and without any of `secrets`. */
function redact(text: string, secrets: readonly string[] = NO_SECRETS): string {
  let out = text.replace(ECHOED_ARGS, '$1 [redacted]')
  for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join('[redacted]')
  return out
}
