import net from 'node:net'

/**
 * Counts the TCP (and Unix socket) writes this process makes while `fn` runs: every
 * `_write`/`_writev` of a `net.Socket` is one write request to the kernel.
 */
export async function countWrites<T>(fn: () => Promise<T>): Promise<{ writes: number; result: T }> {
  const proto = net.Socket.prototype as unknown as { _writeGeneric(...args: unknown[]): unknown }
  const original = proto._writeGeneric
  let writes = 0
  proto._writeGeneric = function (this: net.Socket, ...args: unknown[]) {
    writes++
    return original.apply(this, args)
  }
  try {
    const result = await fn()
    return { writes, result }
  } finally {
    proto._writeGeneric = original
  }
}
