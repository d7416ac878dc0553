import { typedScript, unexpectedReply } from './script.js'

/** What a server says about its memory limit and eviction, and which server it is. */
export interface MemoryPolicy {
  /** `maxmemory` in bytes; 0 is no limit (nothing is ever evicted). */
  readonly maxmemory: number
  /** `maxmemory_human`, e.g. `100.00M`; the byte count when the server gives none. */
  readonly maxmemoryHuman: string
  /** `maxmemory_policy`, e.g. `noeviction`, `allkeys-lru`, `volatile-ttl`. */
  readonly policy: string
  /** `tcp_port` of `INFO server`, when given. */
  readonly port: number | undefined
  /** `redis_version` of `INFO server` (Valkey reports its compatible one too), when given. */
  readonly version: string | undefined
}

/** One field of an INFO section (`name:value` lines); undefined when absent. */
function field(text: string, name: string): string | undefined {
  return new RegExp(`^${name}:([^\\r\\n]*)\\r?$`, 'm').exec(text)?.[1]?.trim()
}

/**
 * Reads the server's memory limit and eviction policy (INFO memory) and what names the
 * server (INFO server): a lock key the server may evict is a lock that silently stops
 * excluding anyone, which the Locker warns about. Lua may call INFO; an ACL without it
 * refuses the whole script.
 *
 * KEYS         none
 * ARGV         none
 * Returns      {INFO memory text, INFO server text}
 * Errors       NOPERM (or a script error) when the user may not run INFO
 */
export const MEMORY_POLICY = typedScript<void, MemoryPolicy>(
  'memory-policy',
  `
return {redis.call('INFO', 'memory'), redis.call('INFO', 'server')}
`,
  () => ({ keys: [], args: [] }),
  (reply) => {
    if (!Array.isArray(reply) || typeof reply[0] !== 'string' || typeof reply[1] !== 'string') {
      throw unexpectedReply('inspect', reply)
    }
    const [memory, server] = reply as [string, string]
    const bytes = field(memory, 'maxmemory')
    const policy = field(memory, 'maxmemory_policy')
    if (bytes === undefined || !/^\d+$/.test(bytes) || policy === undefined || policy === '') {
      throw unexpectedReply('inspect', memory)
    }
    const port = field(server, 'tcp_port')
    return {
      maxmemory: Number(bytes),
      maxmemoryHuman: field(memory, 'maxmemory_human') || bytes,
      policy,
      port: port !== undefined && /^\d+$/.test(port) ? Number(port) : undefined,
      version: field(server, 'redis_version') || undefined,
    }
  },
)
