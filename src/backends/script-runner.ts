import type { RedisAdapter } from '../adapters/adapter.js'
import { BackendError } from '../errors.js'
import { LinkedSet, type Links } from '../internal/links.js'
import { toBackendError } from '../internal/sanitize.js'
import type { Script, ScriptArgs, TypedScript } from '../scripts/index.js'

interface PendingCall extends Links<PendingCall> {
  readonly at: number
  readonly ms: number
  readonly operation: BackendError['operation']
  readonly reject: (err: unknown) => void
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT')
}

/** How much later than its deadline the shared watchdog may reject a hung call. */
export const WATCHDOG_SLACK_MS = 20

/**
 * Runs scripts over one adapter: EVALSHA first, EVAL once on NOSCRIPT, every call
 * bounded by a timeout, every Redis error wrapped as a BackendError.
 */
export class ScriptRunner {
  readonly adapter: RedisAdapter
  /** Scripts sent in full at least once (shared with runners on the same server). */
  readonly loaded: Set<string>
  /** Calls in flight with their deadlines, checked by one shared watchdog timer. */
  readonly #pending = new LinkedSet<PendingCall>()
  #watchdog: NodeJS.Timeout | undefined
  #watchdogAt = Number.POSITIVE_INFINITY

  constructor(adapter: RedisAdapter, loaded = new Set<string>()) {
    this.adapter = adapter
    this.loaded = loaded
  }

  /**
   * Encodes `request`, runs `script` within `timeoutMs` and decodes its reply. A plain
   * promise chain, not an async function: every lock operation passes here, and the
   * async frame was a measurable share of an uncontended cycle's garbage.
   */
  call<Req, Res>(
    script: TypedScript<Req, Res>,
    request: Req,
    timeoutMs: number,
    operation: BackendError['operation'],
  ): Promise<Res> {
    let encoded: ScriptArgs
    try {
      encoded = script.encode(request)
    } catch (err) {
      return Promise.reject(err)
    }
    const { keys, args } = encoded
    // The arguments are the leases' owner tokens: none may reach an error message.
    const failed = (err: unknown): never => {
      throw toBackendError(operation, err, args)
    }
    if (!this.loaded.has(script.sha)) {
      // The first call of each script sends its source (EVAL caches it): an EVALSHA
      // that is bound to fail with NOSCRIPT would cost a whole extra round trip, which
      // on a slow link can be the difference between extending a lease and losing it.
      const at = performance.now() + timeoutMs
      return this.#load(script, keys, args, at, timeoutMs, operation).then(script.decode, failed)
    }
    let sent: Promise<unknown>
    try {
      sent = this.adapter.evalsha(script.sha, keys, args)
    } catch (err) {
      return Promise.reject(toBackendError(operation, err, args))
    }
    // The bound counts from just after the write (µs later than before it): it only catches hangs.
    const at = performance.now() + timeoutMs
    // #until and the decode in one step: a promise and a reaction less on every call.
    return new Promise<Res>((resolve, reject) => {
      const call = this.#watch(at, timeoutMs, operation, reject)
      sent.then(
        (reply) => {
          if (!call.listed) return // the watchdog rejected it: a late reply is dropped
          this.#pending.delete(call)
          let result: Res
          try {
            result = script.decode(reply) // a decode error is not a Redis error: not wrapped
          } catch (err) {
            return reject(err)
          }
          resolve(result)
        },
        (err: unknown) => {
          if (!call.listed) return
          this.#pending.delete(call)
          if (!isNoScript(err)) return reject(toBackendError(operation, err, args))
          // The server lost its script cache (restart, SCRIPT FLUSH, failover): send the
          // source once, within the same bound (#load is async: it never throws).
          resolve(this.#load(script, keys, args, at, timeoutMs, operation).then(script.decode, failed))
        },
      )
    })
  }

  /**
   * Rejects with a BackendError if `p` has not settled after `ms`; its late
   * settlement is swallowed. One watchdog timer serves every call in flight instead
   * of a timer per call (a measurable share of an uncontended acquisition); it may
   * fire up to {@link WATCHDOG_SLACK_MS} late, which only bounds hangs: validity is
   * checked against the deadline separately.
   */
  bounded<T>(p: Promise<T>, ms: number, operation: BackendError['operation']): Promise<T> {
    return this.#until(p, performance.now() + ms, ms, operation)
  }

  /** EVAL of the script's source (which caches it on the server), bounded like {@link bounded}. */
  async #load(
    script: Script,
    keys: readonly string[],
    args: readonly string[],
    at: number,
    ms: number,
    operation: BackendError['operation'],
  ): Promise<unknown> {
    const reply = await this.#until(this.adapter.eval(script.source, keys, args), at, ms, operation)
    this.loaded.add(script.sha)
    return reply
  }

  /** {@link bounded} with its deadline `at` (monotonic ms) given; `ms` is for the message. */
  #until<T>(p: Promise<T>, at: number, ms: number, operation: BackendError['operation']): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const call = this.#watch(at, ms, operation, reject)
      p.then(
        (v) => {
          this.#pending.delete(call)
          resolve(v)
        },
        (e: unknown) => {
          this.#pending.delete(call)
          reject(e)
        },
      )
    })
  }

  /** Lists a call for the watchdog, which rejects it with `reject` once `at` (monotonic ms) has passed. */
  #watch(
    at: number,
    ms: number,
    operation: BackendError['operation'],
    reject: (err: unknown) => void,
  ): PendingCall {
    const call: PendingCall = { at, ms, operation, reject, prev: undefined, next: undefined, listed: false }
    this.#pending.add(call)
    if (at + WATCHDOG_SLACK_MS < this.#watchdogAt) this.#armWatchdog(at)
    return call
  }

  #armWatchdog(at: number): void {
    if (this.#watchdog !== undefined) clearTimeout(this.#watchdog)
    this.#watchdogAt = at
    this.#watchdog = setTimeout(() => this.#checkPending(), Math.max(0, at - performance.now()))
    this.#watchdog.unref()
  }

  #checkPending(): void {
    this.#watchdog = undefined
    this.#watchdogAt = Number.POSITIVE_INFINITY
    const now = performance.now()
    let next = Number.POSITIVE_INFINITY
    for (const call of this.#pending.toArray()) {
      if (call.at <= now) {
        this.#pending.delete(call)
        call.reject(
          new BackendError(
            call.operation,
            `${call.operation} got no reply from Redis within ${Math.round(call.ms)} ms`,
          ),
        )
      } else next = Math.min(next, call.at)
    }
    if (next < Number.POSITIVE_INFINITY) this.#armWatchdog(next)
  }
}

export { sanitizeError, toBackendError } from '../internal/sanitize.js'
