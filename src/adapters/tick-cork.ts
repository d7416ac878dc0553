/**
 * A few writes per event-loop turn instead of one per command, for clients that write
 * each command on its own (ioredis without `enableAutoPipelining`, which we cannot turn
 * on in a borrowed client).
 *
 * The first command of a turn is written at once; from the second on, the client's
 * sockets are corked, and uncorked when a batch is full or, at the latest, by a
 * `process.nextTick` when the current tick queue drains: after the promise reactions
 * when the first command was sent from one (the usual case: a reply settles a promise,
 * its continuation sends the next command), before them when it was sent from plain
 * synchronous code, whose continuations then start a schedule of their own. Everything
 * written in between — acquisitions, releases and extensions of every lock of the
 * process, and the caller's own commands on the same client — leaves in one `writev`
 * per batch. Each command still is the client's own: its reply, error and timeout are
 * unchanged, and the order on a connection is the order of the calls. No timer is
 * involved: nothing waits past the end of the turn it was sent in.
 *
 * One TickCork per client (see `tickCorkOf`), shared by every Locker on it.
 *
 * @module
 */

/** The part of a `net.Socket` (or TLS socket) corking needs. */
export interface Corkable {
  readonly destroyed: boolean
  readonly writable: boolean
  cork(): void
  uncork(): void
}

/**
 * How a turn's commands are split into writes: the first goes out alone and at once
 * (Redis starts on it while we prepare the rest, and a lone command is never delayed),
 * then batches of 4, 16, 64 and at most 128. One write for the whole turn would leave
 * Redis idle until the turn ends and Node idle while Redis works through it: measured on
 * 64 loops, about 1.0 × the raw floor against 1.4 × with this schedule; at 8 loops it
 * fell to 0.5 × (bench/results, issue 14 closing note).
 */
const BATCH_GROWTH = 4
const MAX_BATCH = 128

export class TickCork {
  readonly #sockets: () => readonly (Corkable | undefined | null)[]
  #corked: Corkable[] = []
  #scheduled = false
  /** Commands in the current batch, and how many it may take before it is written. */
  #held = 0
  #limit = 0

  /** `sockets` lists the connections the next commands may go out on (read once per corked batch). */
  constructor(sockets: () => readonly (Corkable | undefined | null)[]) {
    this.#sockets = sockets
  }

  /** Call before sending a command: the first call of a turn corks until the turn ends. */
  hold(): void {
    if (this.enter()) this.scheduleFlush()
  }

  /**
   * {@link hold} in two steps, for a command sent in between: true for the turn's first
   * command, whose caller must call {@link scheduleFlush} once it has sent it (in a
   * `finally`: until then every later command of the process is corked). Scheduling the
   * end-of-turn flush after the write instead of before keeps it off the lone command's
   * way to the socket: measured on a release after 30 ms idle, the `process.nextTick`
   * call took about a third of the library's time before the write.
   */
  enter(): boolean {
    if (this.#scheduled) {
      if (++this.#held <= this.#limit) return false
      // A full batch goes now, so Redis works on it while we prepare the rest.
      this.#uncork()
      this.#limit = Math.min(this.#limit * BATCH_GROWTH, MAX_BATCH)
      this.#held = 1
      this.#cork()
      return false
    }
    // The turn's first command is a batch of one: nothing to cork, it is written at once.
    this.#scheduled = true
    this.#held = 1
    this.#limit = 1
    return true
  }

  /** After the turn's first command was sent: uncork whatever follows it when the turn ends. */
  scheduleFlush(): void {
    process.nextTick(this.#flush)
  }

  #cork(): void {
    for (const socket of this.#sockets()) {
      if (!socket || socket.destroyed || !socket.writable) continue
      socket.cork()
      this.#corked.push(socket)
    }
  }

  #uncork(): void {
    const corked = this.#corked
    this.#corked = [] // before uncorking: whatever an uncork might set off corks afresh
    // A socket destroyed meanwhile dropped what it held; its commands fail with the connection.
    for (const socket of corked) socket.uncork()
  }

  readonly #flush = (): void => {
    this.#scheduled = false
    this.#uncork()
  }
}

const corks = new WeakMap<object, TickCork>()

/** The one TickCork of `client`, created with `sockets` on first use. */
export function tickCorkOf(
  client: object,
  sockets: () => readonly (Corkable | undefined | null)[],
): TickCork {
  let cork = corks.get(client)
  if (!cork) {
    cork = new TickCork(sockets)
    corks.set(client, cork)
  }
  return cork
}
