// Client-side request counting. On Redis 7.0 `total_commands_processed` also counts
// the calls a Lua script makes, so it cannot tell top-level requests apart; instead we
// count what every ioredis client in this process actually sends.
import net from 'node:net'
import { Redis } from 'ioredis'

const counts: Record<string, number> = {}
const seen = new WeakSet<object>()
const excluded = new WeakSet<object>()
let installed = false

/** Socket writes (one `_write`/`_writev` = one write request to the kernel) in this process. */
let socketWrites = 0

/**
 * Wraps `Redis.prototype.sendCommand` once per process (all ioredis clients share it),
 * and counts every TCP write this process makes, whatever client library made it.
 */
export function installCounting(): void {
  if (installed) return
  installed = true
  const socketProto = net.Socket.prototype as unknown as {
    _writeGeneric(this: net.Socket, ...args: unknown[]): unknown
  }
  const writeGeneric = socketProto._writeGeneric
  socketProto._writeGeneric = function (this: net.Socket, ...args: unknown[]) {
    socketWrites++
    return writeGeneric.apply(this, args)
  }
  const proto = Redis.prototype as unknown as {
    sendCommand(this: Redis, command: { name: string }, stream?: unknown): unknown
  }
  const original = proto.sendCommand
  proto.sendCommand = function (this: Redis, command, stream) {
    // A command parked in the offline queue passes here again when it is flushed.
    if (!seen.has(command) && !excluded.has(this)) {
      seen.add(command)
      counts[command.name] = (counts[command.name] ?? 0) + 1
    }
    return original.call(this, command, stream)
  }
}

/** Leaves a client's commands out of the counts (the bench's own INFO probe). */
export function excludeFromCounting(client: Redis): void {
  excluded.add(client)
}

/** A copy of the per-command counts so far. */
export function clientCounts(): Record<string, number> {
  return { ...counts }
}

/**
 * TCP writes so far: read it between the bench's own probe calls (the probe's writes
 * are not told apart, so a window must not contain any).
 */
export function socketWriteCount(): number {
  return socketWrites
}
