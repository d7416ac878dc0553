import calculateSlot from 'cluster-key-slot'
import { InvalidArgumentError } from '../errors.js'
import type { RedisAdapter, Subscriber, Topology } from './adapter.js'
import { SubscriberCore, type SubscriberDriver, type SubscriberEvents } from './subscriber-core.js'

/** GLIDE's `Decoder.String` and `ProtocolVersion.RESP2`, by value: nothing here imports the package. */
const STRING_DECODER = 1
const RESP2 = 1
/** `PubSubChannelModes.Exact` and `.Sharded` (GlideClient and GlideClusterClient alike). */
const EXACT = 0
const SHARDED = 2
/** How long a (S)SUBSCRIBE or (S)UNSUBSCRIBE waits for the server's confirmation. */
const SUBSCRIBE_TIMEOUT_MS = 5_000
/** How often the subscriber compares its confirmed channels with the ones GLIDE has active. */
const WATCH_MS = 200

/** GLIDE's `{ type: 'primarySlotKey', key }` route (cluster clients only). */
interface KeyRoute {
  readonly type: 'primarySlotKey'
  readonly key: string
}

type Channels = Iterable<string> | null

/** The configuration a GLIDE client was created with (kept by GLIDE's `BaseClient` as `config`). */
interface GlideConfig {
  readonly protocol?: number
  readonly [option: string]: unknown
}

/** What `GlideClient` and `GlideClusterClient` have in common, by shape, so GLIDE stays optional. */
export interface GlideLike {
  customCommand(
    args: string[],
    options?: { decoder?: number; route?: KeyRoute | 'allPrimaries' },
  ): Promise<unknown>
  invokeScript(...args: never[]): unknown
  close(message?: string): void
  /** `GlideClient` 2.3+: dynamic subscriptions. */
  subscribe?(channels: Channels, timeoutMs: number): Promise<void>
  unsubscribe?(channels: Channels, timeoutMs: number): Promise<void>
  unsubscribeLazy?(channels?: Channels): Promise<void>
  /** `GlideClusterClient` 2.3+: dynamic sharded subscriptions. */
  ssubscribe?(channels: Channels, timeoutMs: number): Promise<void>
  sunsubscribe?(channels: Channels, timeoutMs: number): Promise<void>
  sunsubscribeLazy?(channels?: Channels): Promise<void>
  invokeScriptWithRoute?(...args: never[]): unknown
  getSubscriptions?(): Promise<{ actualSubscriptions: Partial<Record<number, ReadonlySet<unknown>>> }>
  /** Not public in GLIDE's typings, but set on every client: read to open the subscriber's own client. */
  readonly config?: GlideConfig
}

/** The client class, for a subscriber client of the same kind. */
interface GlideClass {
  createClient(config: object): Promise<GlideLike>
}

/** A GLIDE RequestError with a server's wording (an error reply), not one of its connection errors. */
function isServerReply(err: unknown): boolean {
  if (!(err instanceof Error) || (err.name !== 'RequestError' && err.name !== 'ExecAbortError')) return false
  // "An error was signalled by the server: - Kind: ..." for the codes GLIDE knows, "CODE: ..." for others.
  return /^(An error was signalled by the server|[A-Z][A-Z0-9_]*: )/.test(err.message)
}

/** True for a GLIDE `GlideClient` or `GlideClusterClient` (or anything shaped like one). */
export function isGlide(client: unknown): client is GlideLike {
  const c = client as Partial<GlideLike> | null
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.invokeScript === 'function' &&
    typeof c.customCommand === 'function' &&
    typeof c.close === 'function'
  )
}

function isCluster(client: GlideLike): boolean {
  return typeof client.ssubscribe === 'function' || typeof client.invokeScriptWithRoute === 'function'
}

/**
 * Valkey GLIDE, for a `GlideClient` (one node) or a `GlideClusterClient`, which routes
 * EVAL/EVALSHA by their first key and follows MOVED/ASK itself (also for commands
 * given an explicit route). GLIDE keeps one multiplexed connection per node, so WAIT
 * sent to the node after a write counts that write.
 */
export class GlideAdapter implements RedisAdapter {
  readonly library = 'valkey-glide' as const
  readonly topology: Topology
  readonly #client: GlideLike
  readonly #owned: boolean
  readonly #route: { route: KeyRoute } | undefined
  /** Cluster: one adapter per slot (GLIDE does not tell which node serves a slot). */
  readonly #slotAdapters = new Map<number, RedisAdapter>()
  readonly wait?: (numReplicas: number, timeoutMs: number) => Promise<number>
  readonly connectionId?: () => Promise<unknown>
  readonly slotMaster?: (slot: number) => Promise<RedisAdapter>

  /**
   * @param route internal: every command goes to the master of this key's slot.
   * @throws InvalidArgumentError for a client older than 2.3 or one using RESP2.
   */
  constructor(client: GlideLike, owned: boolean, route?: KeyRoute) {
    const cluster = isCluster(client)
    const subscribe = cluster ? 'ssubscribe' : 'subscribe'
    if (typeof client[subscribe] !== 'function') {
      throw new InvalidArgumentError(
        'client',
        `a Valkey GLIDE client must come from @valkey/valkey-glide 2.3 or later (release wake-ups need its dynamic ${subscribe}()); this one has no ${subscribe}()`,
      )
    }
    if (client.config?.protocol === RESP2) {
      throw new InvalidArgumentError(
        'client',
        'a Valkey GLIDE client must use RESP3 (the default): GLIDE delivers pub/sub messages only over RESP3; this one was created with protocol: ProtocolVersion.RESP2',
      )
    }
    this.#client = client
    this.#owned = owned
    this.#route = route && { route }
    this.topology = cluster && !route ? 'cluster' : 'single'
    if (this.topology === 'cluster') this.slotMaster = async (slot) => this.#slotMaster(slot)
    else {
      this.wait = async (n, ms) => Number(await this.#send(['WAIT', String(n), String(ms)]))
      this.connectionId = () => this.#send(['CLIENT', 'ID'])
    }
  }

  #send(args: string[]): Promise<unknown> {
    return this.#client.customCommand(args, { decoder: STRING_DECODER, ...this.#route })
  }

  async evalsha(sha: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    try {
      return await this.#send(['EVALSHA', sha, String(keys.length), ...keys, ...args])
    } catch (err) {
      // GLIDE words it "An error was signalled by the server: - NoScriptError: ...".
      if (err instanceof Error && /^NOSCRIPT|NoScriptError/.test(err.message)) throw new NoScriptError(err)
      throw err
    }
  }

  eval(source: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    return this.#send(['EVAL', source, String(keys.length), ...keys, ...args])
  }

  async setNx(key: string, value: string, ms: number): Promise<boolean> {
    return (await this.#send(['SET', key, value, 'PX', String(ms), 'NX'])) === 'OK'
  }

  /**
   * Commands routed to the master of `slot` by a key of that slot: GLIDE 2.5's
   * `primarySlotId` route is sent as a key route with no key, i.e. to slot 0's master.
   */
  #slotMaster(slot: number): RedisAdapter {
    let adapter = this.#slotAdapters.get(slot)
    if (!adapter) {
      adapter = new GlideAdapter(this.#client, false, { type: 'primarySlotKey', key: keyInSlot(slot) })
      this.#slotAdapters.set(slot, adapter)
    }
    return adapter
  }

  /** Error replies only: GLIDE's RequestError with a server's wording, not its connection errors. */
  isReplyError(err: unknown): boolean {
    return err instanceof NoScriptError || isServerReply(err)
  }

  createSubscriber(): Subscriber {
    const sharded = isCluster(this.#client)
    return new SubscriberCore((events) => subscriberDriver(this.#client, sharded, events))
  }

  async close(): Promise<void> {
    if (this.#owned) this.#client.close()
  }
}

/** A NOSCRIPT reply as the script runner recognizes it (its message starts with NOSCRIPT); `cause` is GLIDE's error. */
class NoScriptError extends Error {
  override name = 'NoScriptError'
  constructor(cause: Error) {
    super(`NOSCRIPT ${cause.message}`, { cause })
  }
}

const slotKeys = new Map<number, string>()
let keysScanned = 0

/** A key that hashes to `slot`: the first of "0", "1", "2"... that does (all slots are found by "109757"). */
export function keyInSlot(slot: number): string {
  for (;;) {
    const key = slotKeys.get(slot)
    if (key !== undefined) return key
    const candidate = String(keysScanned++)
    const found = calculateSlot(candidate)
    if (!slotKeys.has(found)) slotKeys.set(found, candidate)
  }
}

/**
 * A subscriber on a GLIDE client of its own, created from the caller's client's
 * configuration with a message callback (GLIDE hands a client's pub/sub messages
 * either to the callback of its configuration or to `getPubSubMessage()`, so the
 * caller's client is left alone). GLIDE re-subscribes after a reconnect by itself but
 * tells nobody, often within a few milliseconds; the subscriber notices the reconnect
 * by asking, while it has channels, for the id of its connection(s) (`CLIENT ID`, on
 * every primary for a cluster client): a new id is a new connection, after which
 * messages may have been missed. It reports the reconnect once `getSubscriptions()`
 * (local) shows every confirmed channel active again.
 */
function subscriberDriver(client: GlideLike, sharded: boolean, events: SubscriberEvents): SubscriberDriver {
  const confirmed = new Set<string>()
  let opening: Promise<GlideLike> | undefined
  let watch: NodeJS.Timeout | undefined
  let closed = false
  const open = (): Promise<GlideLike> => {
    if (closed) return Promise.reject(new Error('the subscriber is closed'))
    opening ??= createSubscriberClient(client, events).then(
      (sub) => {
        events.ready()
        watch = watchSubscriptions(sub, sharded, confirmed, events)
        return sub
      },
      (err: unknown) => {
        opening = undefined // the next subscribe tries again
        throw err
      },
    )
    return opening
  }
  return {
    async subscribe(channel) {
      const sub = await open()
      try {
        await (sharded ? sub.ssubscribe : sub.subscribe)?.call(sub, [channel], SUBSCRIBE_TIMEOUT_MS)
      } catch (err) {
        // GLIDE keeps a timed-out channel among the ones it wants and subscribes it later.
        void (sharded ? sub.sunsubscribeLazy : sub.unsubscribeLazy)?.call(sub, [channel]).catch(() => {})
        throw err
      }
      confirmed.add(channel)
    },
    async unsubscribe(channel) {
      confirmed.delete(channel)
      const sub = await open()
      await (sharded ? sub.sunsubscribe : sub.unsubscribe)?.call(sub, [channel], SUBSCRIBE_TIMEOUT_MS)
    },
    async close() {
      closed = true
      const sub = await opening?.catch(() => undefined)
      clearInterval(watch) // started by then, if ever
      if (!sub) return
      // Without this, GLIDE's subscription synchronizer logs an error about the closed client.
      await (sharded ? sub.sunsubscribeLazy : sub.unsubscribeLazy)?.call(sub, null).catch(() => {})
      sub.close()
    },
  }
}

async function createSubscriberClient(client: GlideLike, events: SubscriberEvents): Promise<GlideLike> {
  const Class = client.constructor as Partial<GlideClass>
  if (!client.config || typeof Class.createClient !== 'function') {
    throw new Error(
      'cannot open a subscriber: this GLIDE client exposes neither its configuration nor createClient()',
    )
  }
  return Class.createClient({
    ...client.config,
    lazyConnect: false,
    defaultDecoder: STRING_DECODER,
    clientSideCache: undefined,
    pubsubSubscriptions: {
      channelsAndPatterns: {},
      callback: (msg: { channel: unknown; message: unknown }) =>
        events.message(String(msg.channel), String(msg.message)),
    },
  })
}

/**
 * Reports a reconnect (`ready`) once every confirmed channel is active again after the
 * subscriber's connection changed (a new `CLIENT ID`), failed to answer, or lost one of them.
 */
function watchSubscriptions(
  sub: GlideLike,
  sharded: boolean,
  confirmed: ReadonlySet<string>,
  events: SubscriberEvents,
): NodeJS.Timeout | undefined {
  const getSubscriptions = sub.getSubscriptions
  if (typeof getSubscriptions !== 'function') return undefined
  const mode = sharded ? SHARDED : EXACT
  let lost = false
  let checking = false
  /**
   * The connection ids last seen, first asked for as the client opens: a baseline taken
   * only at the first poll could already be the new connection's.
   */
  let seen: string | undefined
  /** False once the server refused CLIENT ID (an ACL without it): getSubscriptions() alone then. */
  let ask = true
  const askIds = async (): Promise<string | undefined> => {
    if (!ask) return undefined
    try {
      return await connectionIds(sub, sharded)
    } catch (err) {
      if (!isServerReply(err)) throw err
      ask = false
      return undefined
    }
  }
  askIds().then(
    (ids) => {
      seen ??= ids
    },
    () => {},
  )
  const poll = async () => {
    try {
      const ids = await askIds()
      if (ids !== undefined && seen !== undefined && ids !== seen) lost = true
      seen = ids ?? seen
    } catch {
      lost = true // no answer: the connection is in trouble, messages may be missed
      return
    }
    const active = (await getSubscriptions.call(sub)).actualSubscriptions[mode]
    const missing = [...confirmed].some((c) => !active?.has(c))
    if (missing) lost = true
    else if (lost) {
      lost = false
      events.ready()
    }
  }
  const timer = setInterval(() => {
    if (confirmed.size === 0) {
      lost = false // nothing waits, so nothing was missed; `seen` stays the baseline
      return
    }
    if (checking) return
    checking = true
    poll()
      .catch(() => {})
      .finally(() => {
        checking = false
      })
  }, WATCH_MS)
  timer.unref()
  return timer
}

/**
 * The id of each connection the subscriber holds, as one comparable string: `CLIENT ID`
 * on a standalone client's connection, or on every primary's for a cluster client
 * (whose reply is a list of `{ key: address, value: id }`, in no set order).
 */
async function connectionIds(sub: GlideLike, sharded: boolean): Promise<string> {
  const reply = await sub.customCommand(
    ['CLIENT', 'ID'],
    sharded ? { decoder: STRING_DECODER, route: 'allPrimaries' } : { decoder: STRING_DECODER },
  )
  if (!sharded || typeof reply !== 'object' || reply === null) return String(reply)
  const entries = Array.isArray(reply)
    ? reply.map((e: { key?: unknown; value?: unknown }) => `${String(e.key)}=${String(e.value)}`)
    : Object.entries(reply).map(([k, v]) => `${k}=${String(v)}`)
  return entries.sort().join(',')
}
