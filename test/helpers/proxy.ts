import net from 'node:net'
import { LOOPBACK } from './redis-server.js'

export type ProxyMode =
  | { kind: 'pass' }
  /** Delays every chunk in both directions by `ms` plus up to `jitterMs`, keeping per-direction order. */
  | { kind: 'delay'; ms: number; jitterMs?: number | undefined }
  /** A network partition: sockets stay open, bytes vanish both ways. */
  | { kind: 'blackhole' }
  /** Requests reach the server, replies never reach the client. */
  | { kind: 'drop-replies' }
  /** Forwards the next request, then RSTs both sides: the command may have run but the caller cannot know. */
  | { kind: 'reset-after-request' }
  /** New connections are reset on accept; established ones keep passing. */
  | { kind: 'refuse' }
  /**
   * Forwards the first `fraction` of the next chunk a client sends (a batch of commands
   * cut mid-command), then RSTs both sides as 'reset-after-request' does; after that
   * one cut the mode is 'pass' again.
   */
  | { kind: 'cut-next-chunk'; fraction: number }
  /**
   * Passes until a client sends a chunk holding `match` (ASCII, any case; e.g. a command
   * name), then drops every later reply on that connection: the request runs, its
   * answer never comes. Other connections pass.
   */
  | { kind: 'mute-after'; match: string }

export interface ProxyTarget {
  host: string
  port: number
}

// After forwarding the request in 'reset-after-request', the reset waits for the server's
// first reply chunk (proof the command executed) but no longer than this, for commands
// that reply late or never.
const RESET_GRACE_MS = 100

function hardClose(socket: net.Socket): void {
  if (socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    socket.destroy()
  }
}

/** Delivers chunks in one direction, in arrival order, each no earlier than its due time. */
class Lane {
  readonly #target: net.Socket
  #queue: { dueAt: number; chunk: Buffer; onWritten: (() => void) | undefined }[] = []
  #lastDueAt = 0
  #timer: NodeJS.Timeout | undefined

  constructor(target: net.Socket) {
    this.#target = target
  }

  push(chunk: Buffer, delayMs: number, onWritten?: () => void): void {
    // A chunk may never overtake an earlier, longer-delayed one (e.g. when jitter shrinks
    // or the mode switches back to 'pass'); the RESP stream would be corrupted.
    const dueAt = Math.max(performance.now() + delayMs, this.#lastDueAt)
    this.#lastDueAt = dueAt
    this.#queue.push({ dueAt, chunk, onWritten })
    this.#flush()
  }

  clear(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#queue = []
  }

  #flush(): void {
    const now = performance.now()
    while (this.#queue.length > 0 && this.#queue[0]!.dueAt <= now) {
      const { chunk, onWritten } = this.#queue.shift()!
      if (this.#target.destroyed) continue
      // Back-pressure is ignored on purpose: test traffic is tiny and loopback is fast.
      this.#target.write(chunk, onWritten && (() => onWritten()))
    }
    const head = this.#queue[0]
    if (head && !this.#timer) {
      this.#timer = setTimeout(
        () => {
          this.#timer = undefined
          this.#flush()
        },
        Math.max(0, head.dueAt - now),
      )
    }
  }
}

class Link {
  readonly client: net.Socket
  readonly upstream: net.Socket
  readonly toServer: Lane
  readonly toClient: Lane
  /** Set once the request has been forwarded in 'reset-after-request'. */
  resetArmed = false
  /** A side closed during 'blackhole'; the other side is closed when the partition heals. */
  closePending = false
  /** Set in 'mute-after' once the client sent the match: no reply gets through any more. */
  muted = false

  constructor(client: net.Socket, upstream: net.Socket) {
    this.client = client
    this.upstream = upstream
    this.toServer = new Lane(upstream)
    this.toClient = new Lane(client)
  }

  destroy(): void {
    this.toServer.clear()
    this.toClient.clear()
    hardClose(this.client)
    hardClose(this.upstream)
  }
}

/** A loopback TCP proxy in front of one Redis that injects network faults on demand. */
export class FaultProxy {
  readonly host = LOOPBACK
  readonly port: number
  readonly url: string
  readonly #server: net.Server
  readonly #target: ProxyTarget
  readonly #links = new Set<Link>()
  #mode: ProxyMode = { kind: 'pass' }
  /** The chunks 'cut-next-chunk' cut: what the client sent, and how much of it was forwarded. */
  readonly cuts: { chunk: Buffer; forwarded: number }[] = []

  private constructor(server: net.Server, port: number, target: ProxyTarget) {
    this.#server = server
    this.port = port
    this.url = `redis://${LOOPBACK}:${port}`
    this.#target = target
    server.on('connection', (socket) => this.#accept(socket))
  }

  static async start(target: ProxyTarget): Promise<FaultProxy> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const server = net.createServer()
      const port = await new Promise<number>((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, LOOPBACK, () => {
          const address = server.address()
          resolve(typeof address === 'object' && address !== null ? address.port : 0)
        })
      })
      // Never occupy the shared Redis port, even if it happens to be free right now.
      if (port !== 6379) return new FaultProxy(server, port, target)
      await new Promise((resolve) => server.close(resolve))
    }
    throw new Error('could not find a free loopback port for the proxy')
  }

  get mode(): ProxyMode {
    return this.#mode
  }

  /** Connections muted by 'mute-after' so far (closed ones included). */
  mutedCount = 0

  /** Number of proxied client connections currently open. */
  get connectionCount(): number {
    return this.#links.size
  }

  /** Takes effect for existing connections at their next chunk; already-delayed chunks are still delivered. */
  setMode(mode: ProxyMode): void {
    this.#mode = mode
    if (mode.kind === 'blackhole') return
    for (const link of this.#links) {
      if (link.closePending) this.#drop(link)
    }
  }

  /** Abruptly resets every current connection, as if the network dropped them. */
  resetAll(): void {
    for (const link of [...this.#links]) this.#drop(link)
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    this.resetAll()
    await closed
  }

  #accept(client: net.Socket): void {
    client.on('error', () => {})
    if (this.#mode.kind === 'refuse') {
      hardClose(client)
      return
    }
    const upstream = net.connect({ host: this.#target.host, port: this.#target.port })
    upstream.on('error', () => {})
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    const link = new Link(client, upstream)
    this.#links.add(link)
    client.on('data', (chunk: Buffer) => this.#fromClient(link, chunk))
    upstream.on('data', (chunk: Buffer) => this.#fromServer(link, chunk))
    client.on('close', () => this.#onSideClosed(link))
    upstream.on('close', () => this.#onSideClosed(link))
  }

  #fromClient(link: Link, chunk: Buffer): void {
    // A link about to be reset forwards nothing more, whatever the mode is now.
    if (link.resetArmed) return
    const mode = this.#mode
    switch (mode.kind) {
      case 'pass':
      case 'refuse':
      case 'drop-replies':
        link.toServer.push(chunk, 0)
        return
      case 'delay':
        link.toServer.push(chunk, delayOf(mode))
        return
      case 'blackhole':
        return
      case 'mute-after':
        if (!link.muted && chunk.toString('latin1').toLowerCase().includes(mode.match.toLowerCase())) {
          link.muted = true
          this.mutedCount++
        }
        link.toServer.push(chunk, 0)
        return
      case 'reset-after-request':
      case 'cut-next-chunk': {
        // Only the first request goes through; the connection is about to die anyway.
        link.resetArmed = true
        let forward = chunk
        if (mode.kind === 'cut-next-chunk') {
          forward = chunk.subarray(0, Math.floor(chunk.length * mode.fraction))
          this.cuts.push({ chunk, forwarded: forward.length })
          this.#mode = { kind: 'pass' } // one cut: the reconnected link passes
        }
        link.toServer.push(forward, 0, () => {
          setTimeout(() => this.#drop(link), RESET_GRACE_MS).unref()
        })
        return
      }
    }
  }

  #fromServer(link: Link, chunk: Buffer): void {
    if (link.resetArmed) {
      // The server executed the request: swallow its reply and reset both sides.
      this.#drop(link)
      return
    }
    const mode = this.#mode
    switch (mode.kind) {
      case 'pass':
      case 'refuse':
      case 'reset-after-request':
      case 'cut-next-chunk':
        link.toClient.push(chunk, 0)
        return
      case 'mute-after':
        if (!link.muted) link.toClient.push(chunk, 0)
        return
      case 'delay':
        link.toClient.push(chunk, delayOf(mode))
        return
      case 'blackhole':
      case 'drop-replies':
        return
    }
  }

  #onSideClosed(link: Link): void {
    if (!this.#links.has(link)) return
    // In a partition the peer would not learn about the close either.
    if (this.#mode.kind === 'blackhole' && !(link.client.destroyed && link.upstream.destroyed)) {
      link.closePending = true
      return
    }
    this.#drop(link)
  }

  #drop(link: Link): void {
    this.#links.delete(link)
    link.destroy()
  }
}

function delayOf(mode: { ms: number; jitterMs?: number | undefined }): number {
  return mode.ms + Math.random() * (mode.jitterMs ?? 0)
}

export function startProxy(target: ProxyTarget): Promise<FaultProxy> {
  return FaultProxy.start(target)
}
