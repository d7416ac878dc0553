import type { RedisAdapter, Subscriber } from '../../src/adapters/adapter.js'
import { EXTEND_HOLDERS_UNIFORM, EXTEND_UNIFORM } from '../../src/scripts/index.js'

/** A promise the test settles by hand; until then it is a Redis that does not answer. */
export interface Deferred<T> {
  readonly promise: Promise<T>
  readonly settled: boolean
  resolve(value: T): void
  reject(error: unknown): void
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  let settled = false
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return {
    promise,
    get settled() {
      return settled
    },
    resolve(value) {
      settled = true
      resolve(value)
    },
    reject(error) {
      settled = true
      reject(error)
    },
  }
}

/** One script call as the adapter saw it. */
export interface ScriptCall {
  readonly command: 'evalsha' | 'eval'
  /** The SHA1 for EVALSHA, the script source for EVAL. */
  readonly script: string
  readonly keys: readonly string[]
  readonly args: readonly string[]
}

/** Answers a script call: a value, a thrown error, or a promise (possibly one that never settles). */
export type CallHandler = (call: ScriptCall) => unknown

/** One lease of an EXTEND call, decoded from its arguments. */
export interface ExtendEntry {
  readonly token: string
  readonly lifetimeMs: number
  readonly keys: readonly string[]
}

/**
 * Decodes the leases of an extension call: EXTEND (`ARGV = n, (token, ms, nkeys)*`) or
 * EXTEND_UNIFORM (`ARGV = ms, token*`, one key per lease).
 */
export function extendEntries(call: ScriptCall): ExtendEntry[] {
  if (call.script === EXTEND_UNIFORM.sha || call.script === EXTEND_UNIFORM.source) {
    const lifetimeMs = Number(call.args[0])
    return call.keys.map((key, i) => ({ token: call.args[i + 1] as string, lifetimeMs, keys: [key] }))
  }
  if (call.script === EXTEND_HOLDERS_UNIFORM.sha || call.script === EXTEND_HOLDERS_UNIFORM.source) {
    const lifetimeMs = Number(call.args[0])
    // Per run of holders of one key: KEYS lock key, holders set; ARGV count, tokens.
    const out: ExtendEntry[] = []
    let a = 1
    for (let r = 0; r < call.keys.length / 2; r++) {
      const count = Number(call.args[a])
      for (let i = 1; i <= count; i++)
        out.push({ token: call.args[a + i] as string, lifetimeMs, keys: [call.keys[2 * r] as string] })
      a += count + 1
    }
    return out
  }
  const n = Number(call.args[0])
  const out: ExtendEntry[] = []
  let k = 0
  for (let i = 0; i < n; i++) {
    const token = call.args[1 + 4 * i] as string
    const lifetimeMs = Number(call.args[2 + 4 * i])
    const nk = Number(call.args[3 + 4 * i])
    // A holder's keys come with their holders sets: lock key, set, lock key, set...
    const step = call.args[4 + 4 * i] === 'h' ? 2 : 1
    const keys = call.keys.slice(k, k + step * nk).filter((_, j) => j % step === 0)
    out.push({ token, lifetimeMs, keys })
    k += step * nk
  }
  return out
}

/** An EXTEND handler answering `status(token)` for each lease of the batch (1 when omitted). */
export function extendReply(status: (token: string) => number = () => 1): CallHandler {
  return (call) => extendEntries(call).map((e) => status(e.token))
}

/** A pub/sub connection the test drives: it records (un)subscriptions and delivers what the test emits. */
export class FakeSubscriber implements Subscriber {
  /** Every subscribe/unsubscribe request, in order. */
  readonly log: { readonly op: 'subscribe' | 'unsubscribe'; readonly channel: string }[] = []
  /** Channels subscribed successfully and not unsubscribed since. */
  readonly channels = new Set<string>()
  closed = false
  /** Answers SUBSCRIBE; resolves at once by default. Replace it to fail or hang. */
  subscribeHandler: (channel: string) => Promise<void> | void
  readonly #messageHandlers: ((channel: string, message: string) => void)[] = []
  readonly #reconnectHandlers: (() => void)[] = []

  constructor(subscribeHandler: (channel: string) => Promise<void> | void = () => {}) {
    this.subscribeHandler = subscribeHandler
  }

  get subscribeCalls(): number {
    return this.log.filter((e) => e.op === 'subscribe').length
  }

  async subscribe(channel: string): Promise<void> {
    this.log.push({ op: 'subscribe', channel })
    await this.subscribeHandler(channel)
    this.channels.add(channel)
  }

  async unsubscribe(channel: string): Promise<void> {
    this.log.push({ op: 'unsubscribe', channel })
    this.channels.delete(channel)
  }

  onMessage(handler: (channel: string, message: string) => void): void {
    this.#messageHandlers.push(handler)
  }

  onReconnect(handler: () => void): void {
    this.#reconnectHandlers.push(handler)
  }

  async close(): Promise<void> {
    this.closed = true
  }

  /** Delivers a message as if Redis published it (ignored once closed, like a real connection). */
  emit(channel: string, message: string): void {
    if (this.closed) return
    for (const h of this.#messageHandlers) h(channel, message)
  }

  /** Simulates the connection coming back after a drop. */
  reconnect(): void {
    if (this.closed) return
    for (const h of this.#reconnectHandlers) h()
  }
}

/**
 * A scriptable {@link RedisAdapter}: it records every script call and answers via
 * `handler`, which each test sets. Use {@link FakeAdapter.hang} for a Redis that
 * never answers; {@link FakeAdapter.settleHung} (e.g. in `afterEach`) ends those
 * calls so no Backend timeout stays armed after a test.
 */
export class FakeAdapter implements RedisAdapter {
  readonly library = 'ioredis' as const
  topology: RedisAdapter['topology'] = 'single'
  readonly calls: ScriptCall[] = []
  readonly subscribers: FakeSubscriber[] = []
  /** Calls answered by {@link hang} and not settled yet, oldest first. */
  readonly hung: Deferred<unknown>[] = []
  handler: CallHandler = () => {
    throw new Error('FakeAdapter: no handler set for this test')
  }
  /** Used for every subscriber created from now on. */
  subscribeHandler: (channel: string) => Promise<void> | void = () => {}
  closed = false

  /** EVALSHA calls only (EVAL fallbacks are in {@link calls} too). */
  get evalshaCalls(): ScriptCall[] {
    return this.calls.filter((c) => c.command === 'evalsha')
  }

  get lastSubscriber(): FakeSubscriber | undefined {
    return this.subscribers.at(-1)
  }

  /** A handler for a Redis that does not answer until the test settles the call. */
  hang(): CallHandler {
    return () => {
      const d = deferred<unknown>()
      this.hung.push(d)
      return d.promise
    }
  }

  /** Rejects every hung call that is still unsettled. */
  settleHung(error: unknown = new Error('connection closed by test')): void {
    for (const d of this.hung.splice(0)) if (!d.settled) d.reject(error)
  }

  evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#answer({ command: 'evalsha', script: sha, keys: [...keys], args: [...args] })
  }

  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#answer({ command: 'eval', script: source, keys: [...keys], args: [...args] })
  }

  createSubscriber(): Subscriber {
    const sub = new FakeSubscriber(this.subscribeHandler)
    this.subscribers.push(sub)
    return sub
  }

  isReplyError(err: unknown): boolean {
    return err instanceof Error && /^[A-Z]+ /.test(err.message)
  }

  async close(): Promise<void> {
    this.closed = true
  }

  #answer(call: ScriptCall): Promise<unknown> {
    this.calls.push(call)
    try {
      return Promise.resolve(this.handler(call))
    } catch (err) {
      return Promise.reject(err)
    }
  }
}
