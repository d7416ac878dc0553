import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { ScriptRunner } from '../../src/backends/script-runner.js'
import { BackendError } from '../../src/errors.js'
import {
  EVICTION_WARNING_CODE,
  type EvictionTarget,
  evictionCheck,
  evictionWarning,
  evicts,
  WARNING_TYPE,
  warnIfEvicting,
} from '../../src/eviction.js'
import { MEMORY_POLICY, type MemoryPolicy } from '../../src/scripts/index.js'
import { FakeAdapter } from '../helpers/fake-adapter.js'

/** INFO memory and INFO server of a Redis 7.0 started with `--maxmemory 100mb --maxmemory-policy allkeys-lru` (abridged). */
const MEMORY =
  '# Memory\r\nused_memory:989288\r\nused_memory_human:966.10K\r\nused_memory_lua:33792\r\n' +
  'maxmemory:104857600\r\nmaxmemory_human:100.00M\r\nmaxmemory_policy:allkeys-lru\r\n' +
  'allocator_frag_ratio:1.08\r\nmem_allocator:jemalloc-5.3.0\r\n'
const SERVER =
  '# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\n' +
  'process_id:2797\r\nrun_id:89d242874423758ea26e6c45c8f53d7136acc60f\r\ntcp_port:34395\r\n'

const LRU: MemoryPolicy = {
  maxmemory: 104857600,
  maxmemoryHuman: '100.00M',
  policy: 'allkeys-lru',
  port: 34395,
  version: '7.0.15',
}

describe('MEMORY_POLICY: encode and decode (pure, no Redis)', () => {
  test('sends no keys and no arguments', () => {
    assert.deepEqual(MEMORY_POLICY.encode(undefined), { keys: [], args: [] })
  })

  test('reads maxmemory, its human form and the policy from INFO memory, port and version from INFO server', () => {
    assert.deepEqual(MEMORY_POLICY.decode([MEMORY, SERVER]), LRU)
    const unlimited = MEMORY.replace('maxmemory:104857600', 'maxmemory:0')
      .replace('maxmemory_human:100.00M', 'maxmemory_human:0B')
      .replace('allkeys-lru', 'noeviction')
    assert.deepEqual(MEMORY_POLICY.decode([unlimited, SERVER]), {
      ...LRU,
      maxmemory: 0,
      maxmemoryHuman: '0B',
      policy: 'noeviction',
    })
  })

  test('plain line breaks do too; the optional fields may be missing', () => {
    const memory = 'maxmemory:5\nmaxmemory_policy:volatile-ttl\n'
    assert.deepEqual(MEMORY_POLICY.decode([memory, '# Server\n']), {
      maxmemory: 5,
      maxmemoryHuman: '5',
      policy: 'volatile-ttl',
      port: undefined,
      version: undefined,
    })
  })

  test('anything else is a BackendError', () => {
    const bad: unknown[] = [
      null,
      'OK',
      [MEMORY],
      [1, 2],
      [MEMORY.replace(/maxmemory_policy:[^\r]*/, ''), SERVER],
      [MEMORY.replace('maxmemory:104857600', 'maxmemory:lots'), SERVER],
      [MEMORY.replace(/^maxmemory:.*$/m, ''), SERVER],
    ]
    for (const reply of bad) {
      assert.throws(() => MEMORY_POLICY.decode(reply), BackendError, JSON.stringify(reply))
    }
  })
})

describe('evicts: a memory limit with any policy but noeviction', () => {
  test('every allkeys-* and volatile-* policy with maxmemory; nothing without maxmemory or with noeviction', () => {
    const policies = [
      'allkeys-lru',
      'allkeys-lfu',
      'allkeys-random',
      'volatile-lru',
      'volatile-lfu',
      'volatile-random',
      'volatile-ttl',
    ]
    for (const policy of policies) {
      assert.equal(evicts({ ...LRU, policy }), true, policy)
      assert.equal(evicts({ ...LRU, policy, maxmemory: 0 }), false, `${policy} without maxmemory`)
    }
    assert.equal(evicts({ ...LRU, policy: 'noeviction' }), false)
  })
})

describe('evictionWarning: the text', () => {
  test('one server: the policy, the server, why it matters and the fix', () => {
    const text = evictionWarning([{ index: 0, topology: 'single', policy: LRU }], 0)
    assert.match(
      text,
      /^The Redis server on port 34395 \(Redis 7\.0\.15\) may evict lock keys \(maxmemory 100\.00M, maxmemory-policy allkeys-lru\)\. /,
    )
    assert.match(text, /volatile-\* ones included/)
    assert.match(text, /another client acquires it while its holder still believes it holds it/)
    assert.match(text, /set maxmemory-policy noeviction on this server/)
    assert.match(text, /a dedicated Redis with noeviction/)
  })

  test('a quorum: one text naming each node that may evict', () => {
    const text = evictionWarning(
      [
        { index: 0, topology: 'single', policy: LRU },
        { index: 2, topology: 'single', policy: { ...LRU, port: 7002, policy: 'volatile-ttl' } },
      ],
      3,
    )
    assert.match(
      text,
      /^2 of the 3 Redis nodes of this quorum may evict lock keys: client 0 \(port 34395, Redis 7\.0\.15, maxmemory 100\.00M, maxmemory-policy allkeys-lru\); client 2 \(port 7002, .*volatile-ttl\)\. /,
    )
    assert.match(text, /on these servers/)
  })

  test('a cluster: the node the client reached, saying the others were not checked', () => {
    const text = evictionWarning([{ index: 0, topology: 'cluster', policy: LRU }], 0)
    assert.match(
      text,
      /^The Redis Cluster node on port 34395 .* that this client reached \(the other nodes were not checked\)/,
    )
  })
})

/** A target whose adapter answers the check's script with `answer` (a value, a throw, a promise). */
function target(answer: () => unknown, topology: EvictionTarget['topology'] = 'single') {
  const adapter = new FakeAdapter()
  adapter.handler = answer
  return { adapter, target: { runner: new ScriptRunner(adapter), topology } satisfies EvictionTarget }
}

/** Process warnings with our code while `fn` runs, and a tick after. */
async function warningsDuring(fn: () => Promise<unknown>): Promise<Error[]> {
  const seen: Error[] = []
  const listener = (w: Error) => {
    if ((w as Error & { code?: unknown }).code === EVICTION_WARNING_CODE) seen.push(w)
  }
  process.on('warning', listener)
  try {
    await fn()
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.off('warning', listener)
  }
  return seen
}

describe('warnIfEvicting: one bounded look, one warning, never a rejection', () => {
  const adapters: FakeAdapter[] = []
  // The runner's watchdog is unref'd (it must not keep a process alive): with a fake
  // adapter nothing else would, as a real client's socket does.
  let keepAlive: NodeJS.Timeout | undefined
  beforeEach(() => {
    keepAlive = setInterval(() => {}, 1000)
  })
  afterEach(() => {
    clearInterval(keepAlive)
    for (const a of adapters.splice(0)) a.settleHung()
  })

  test('an evicting server: one warning with our code and type, its text resolved', async () => {
    const { target: t } = target(() => [MEMORY, SERVER])
    let text: string | undefined
    const seen = await warningsDuring(async () => {
      text = await warnIfEvicting([t], false)
    })
    assert.equal(seen.length, 1)
    assert.equal(seen[0]?.name, WARNING_TYPE)
    assert.equal(seen[0]?.message, text)
    assert.match(text ?? '', /allkeys-lru/)
  })

  test('refused, unreadable or unanswered: nothing, within the timeout', async () => {
    const refused = target(() => {
      throw new Error("NOPERM this user has no permissions to run the 'info' command")
    })
    const odd = target(() => 'OK')
    const hung = target(() => undefined)
    hung.adapter.handler = hung.adapter.hang()
    adapters.push(hung.adapter)
    const started = performance.now()
    let result: unknown = 'not settled'
    const seen = await warningsDuring(async () => {
      result = await warnIfEvicting([refused.target, odd.target, hung.target], true, 50)
    })
    assert.equal(result, undefined)
    assert.deepEqual(seen, [])
    assert.ok(performance.now() - started < 1000, 'bounded by the timeout')
  })

  test('a quorum with one evicting node among refusing and hung ones: one warning naming that node', async () => {
    const hung = target(() => undefined)
    hung.adapter.handler = hung.adapter.hang()
    adapters.push(hung.adapter)
    const refused = target(() => {
      throw new Error('NOPERM')
    })
    const evicting = target(() => [MEMORY, SERVER])
    let text: string | undefined
    const seen = await warningsDuring(async () => {
      text = await warnIfEvicting([hung.target, refused.target, evicting.target], true, 50)
    })
    assert.equal(seen.length, 1)
    assert.match(text ?? '', /^1 of the 3 Redis nodes of this quorum may evict lock keys: client 2 \(/)
  })
})

describe('evictionCheck: once, after the caller, never throwing', () => {
  test('a client that is not one: nothing happens, nothing rejects', async () => {
    const check = evictionCheck({ not: 'a client' })
    const rejections: unknown[] = []
    const onRejection = (r: unknown) => rejections.push(r)
    process.on('unhandledRejection', onRejection)
    try {
      check()
      check()
      await new Promise((resolve) => setTimeout(resolve, 20))
    } finally {
      process.off('unhandledRejection', onRejection)
    }
    assert.deepEqual(rejections, [])
  })

  test('a check Redis never answers does not keep the process alive', () => {
    // A child process whose only pending work is a check with a 60 s bound: it must
    // exit at once (the runner's watchdog timer is unref'd; a hung promise holds nothing).
    const program = `
      import { ScriptRunner } from './src/backends/script-runner.ts'
      import { warnIfEvicting } from './src/eviction.ts'
      const adapter = { eval: () => new Promise(() => {}), evalsha: () => new Promise(() => {}) }
      void warnIfEvicting([{ runner: new ScriptRunner(adapter), topology: 'single' }], false, 60_000)
      console.log('checking')
    `
    const started = Date.now()
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], {
      cwd: new URL('../..', import.meta.url),
      encoding: 'utf8',
      timeout: 30_000,
    })
    assert.equal(child.status, 0, child.stderr)
    assert.equal(child.stdout.trim(), 'checking')
    assert.ok(Date.now() - started < 20_000, `exited after ${Date.now() - started} ms`)
  })
})
