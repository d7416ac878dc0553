import assert from 'node:assert/strict'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Redis } from 'ioredis'
import { describeMatrix, IOREDIS_DISCONNECT_TIMEOUT } from '../helpers/matrix.js'
import { spawnWorker } from '../helpers/processes.js'
import { type FaultProxy, startProxy } from '../helpers/proxy.js'
import { type RedisServer, startRedis } from '../helpers/redis-server.js'
import { sleep, waitFor, withTimeout } from '../helpers/wait.js'

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A client that fails fast instead of reconnecting, so fault assertions are deterministic. */
function proxiedClient(proxy: FaultProxy, commandTimeout?: number): Redis {
  const client = new Redis(proxy.url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...IOREDIS_DISCONNECT_TIMEOUT,
    ...(commandTimeout === undefined ? {} : { commandTimeout }),
  })
  client.on('error', () => {})
  return client
}

async function timePing(client: Redis): Promise<number> {
  const started = performance.now()
  assert.equal(await client.ping(), 'PONG')
  return performance.now() - started
}

describe('redis-server helper', { timeout: 30_000 }, () => {
  let server: RedisServer

  before(async () => {
    server = await startRedis()
  })
  after(() => server.stop())

  it('starts on a loopback port other than 6379 and answers commands', async () => {
    assert.notEqual(server.port, 6379)
    assert.equal(server.host, '127.0.0.1')
    assert.equal(server.url, `redis://127.0.0.1:${server.port}`)
    assert.equal(await server.command('PING'), 'PONG')
    assert.equal(await server.command('SET', 'k', 'v', 'PX', 60_000), 'OK')
    assert.equal(await server.command('GET', 'k'), 'v')
  })

  it('holds commands while paused and answers them after resume', async () => {
    await server.command('SET', 'paused', 'yes')
    server.pause()
    try {
      let settled = false
      const reply = server.command('GET', 'paused').finally(() => {
        settled = true
      })
      await sleep(300)
      assert.equal(settled, false, 'a paused server must not answer')
      server.resume()
      assert.equal(await withTimeout(reply, 2_000), 'yes')
    } finally {
      server.resume()
    }
  })

  it('restarts on the same port with an empty dataset', async () => {
    await server.command('SET', 'before-restart', '1')
    const { port, pid } = server
    await server.restart()
    assert.equal(server.port, port)
    assert.notEqual(server.pid, pid)
    assert.equal(isAlive(pid), false)
    assert.equal(await server.command('GET', 'before-restart'), null)
  })

  it('rejects the shared Redis port', async () => {
    await assert.rejects(startRedis({ port: 6379 }), /6379/)
  })

  it('stops idempotently and removes its temp dir', async () => {
    const other = await startRedis({ args: ['--maxmemory', '10mb'] })
    assert.deepEqual(await other.command('CONFIG', 'GET', 'maxmemory'), [
      'maxmemory',
      String(10 * 1024 * 1024),
    ])
    other.pause()
    await Promise.all([other.stop(), other.stop()])
    await other.stop()
    assert.equal(isAlive(other.pid), false)
    await assert.rejects(stat(other.dir), { code: 'ENOENT' })
  })
})

describe('fault proxy', { timeout: 30_000 }, () => {
  let server: RedisServer
  let proxy: FaultProxy
  const clients: Redis[] = []

  before(async () => {
    server = await startRedis()
    proxy = await startProxy({ host: server.host, port: server.port })
  })
  after(async () => {
    for (const client of clients) if (client.status !== 'end') client.disconnect()
    await proxy.close()
    await server.stop()
  })

  async function connect(commandTimeout?: number): Promise<Redis> {
    proxy.setMode({ kind: 'pass' })
    const client = proxiedClient(proxy, commandTimeout)
    clients.push(client)
    await client.connect()
    return client
  }

  it('passes traffic through', async () => {
    assert.notEqual(proxy.port, 6379)
    const client = await connect()
    assert.equal(await client.set('via-proxy', '1'), 'OK')
    assert.equal(await server.command('GET', 'via-proxy'), '1')
    assert.ok(proxy.connectionCount >= 1)
  })

  it('delays both directions in order', async () => {
    const client = await connect()
    const baseline = Math.min(await timePing(client), await timePing(client))
    proxy.setMode({ kind: 'delay', ms: 40, jitterMs: 10 })
    const delayed = await timePing(client)
    // 40 ms each way; allow for timer granularity.
    assert.ok(delayed >= 75, `expected >= 75 ms round trip, got ${delayed.toFixed(1)} ms`)
    assert.ok(delayed > baseline + 60, `baseline ${baseline.toFixed(1)} ms, delayed ${delayed.toFixed(1)} ms`)
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => client.echo(String(i))))
    assert.deepEqual(
      replies,
      Array.from({ length: 20 }, (_, i) => String(i)),
    )
    proxy.setMode({ kind: 'pass' })
    assert.ok((await timePing(client)) < 40)
  })

  it('drops replies: the command runs but the caller times out', async () => {
    const client = await connect(200)
    proxy.setMode({ kind: 'drop-replies' })
    await assert.rejects(client.set('dropped', 'ran'), /timed out/i)
    assert.equal(await server.command('GET', 'dropped'), 'ran')
  })

  it('blackholes both directions while keeping sockets open', async () => {
    const client = await connect(200)
    const before = proxy.connectionCount
    proxy.setMode({ kind: 'blackhole' })
    await assert.rejects(client.set('blackholed', '1'), /timed out/i)
    assert.equal(await server.command('GET', 'blackholed'), null)
    assert.equal(proxy.connectionCount, before)
    assert.equal(client.status, 'ready')
  })

  it('resets the connection after forwarding one request', async () => {
    proxy.setMode({ kind: 'reset-after-request' })
    const socket = net.connect({ host: proxy.host, port: proxy.port })
    const outcome = new Promise<{ data: string; error: string | undefined }>((resolve) => {
      let data = ''
      let error: string | undefined
      socket.on('data', (chunk) => {
        data += chunk.toString()
      })
      socket.on('error', (err: NodeJS.ErrnoException) => {
        error = err.code
      })
      socket.on('close', () => resolve({ data, error }))
    })
    socket.write('SET reset-key ran\r\n')
    const { data, error } = await withTimeout(outcome, 2_000)
    assert.equal(data, '', 'the reply must not reach the client')
    assert.equal(error, 'ECONNRESET')
    assert.equal(await server.command('GET', 'reset-key'), 'ran')
  })

  it('refuses new connections but keeps existing ones', async () => {
    const existing = await connect()
    proxy.setMode({ kind: 'refuse' })
    const fresh = proxiedClient(proxy)
    clients.push(fresh)
    await assert.rejects(fresh.connect())
    assert.equal(await existing.ping(), 'PONG')
  })

  it('resetAll drops every connection', async () => {
    const client = await connect()
    assert.ok(proxy.connectionCount >= 1)
    proxy.resetAll()
    await waitFor(() => proxy.connectionCount === 0, {
      timeoutMs: 1_000,
      message: 'proxy to drop connections',
    })
    await waitFor(() => client.status === 'end', { timeoutMs: 1_000, message: 'client to notice the reset' })
  })
})

describe('worker processes', { timeout: 30_000 }, () => {
  let dir: string

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'async-redis-lock-worker-'))
  })
  after(() => rm(dir, { recursive: true, force: true }))

  it('collects stdout lines and reports exit', async () => {
    const script = path.join(dir, 'echo.ts')
    await writeFile(
      script,
      [
        'const label: string = process.env.LABEL ?? "none"',
        'console.log(["ready", label, process.argv.slice(2).join(",")].join(" "))',
        'setTimeout(() => console.log("late"), 50)',
      ].join('\n'),
    )
    const worker = spawnWorker(script, ['a', 'b'], { LABEL: 'x' })
    assert.equal(await worker.waitForLine((l) => l.startsWith('ready')), 'ready x a,b')
    assert.equal(await worker.waitForLine((l) => l === 'late'), 'late')
    assert.deepEqual(await worker.exited, { code: 0, signal: null })
    assert.deepEqual(worker.stdoutLines(), ['ready x a,b', 'late'])
    await assert.rejects(
      worker.waitForLine(() => false, 100),
      /already exited/,
    )
  })

  it('kills a worker and rejects waiters when it exits early', async () => {
    const script = path.join(dir, 'hang.ts')
    await writeFile(script, 'console.log("up")\nsetInterval(() => {}, 1000)\n')
    const worker = spawnWorker(script, [])
    await worker.waitForLine((l) => l === 'up')
    const waiting = worker.waitForLine((l) => l === 'never', 5_000)
    assert.equal(worker.kill('SIGKILL'), true)
    await assert.rejects(waiting, /exited \(code null, signal SIGKILL\)/)
    assert.deepEqual(await worker.exited, { code: null, signal: 'SIGKILL' })
  })
})

describe('waitFor', () => {
  it('resolves once the predicate holds and explains timeouts', async () => {
    let calls = 0
    await waitFor(() => ++calls >= 3, { intervalMs: 5 })
    assert.equal(calls, 3)
    await assert.rejects(
      waitFor(() => false, { timeoutMs: 50, message: 'the impossible' }),
      /timed out after 50 ms waiting for the impossible/,
    )
  })
})

describeMatrix('matrix smoke', (ctx) => {
  it('connects a client of the block kind to its own server', async () => {
    assert.notEqual(ctx.server.port, 6379)
    const client = await ctx.client()
    assert.equal(await client.set('kind', ctx.kind), 'OK')
    assert.equal(await ctx.admin.get('kind'), ctx.kind)
    assert.ok((await ctx.admin.pttl('kind')) === -1)
  })

  it('connects through a proxy and fails fast when the proxy refuses', async () => {
    const proxy = await startProxy({ host: ctx.server.host, port: ctx.server.port })
    try {
      const client = await ctx.client({ url: proxy.url })
      assert.equal(await client.set('via-proxy', ctx.kind), 'OK')
      assert.equal(await ctx.admin.get('via-proxy'), ctx.kind)
      proxy.setMode({ kind: 'refuse' })
      const started = Date.now()
      await assert.rejects(ctx.client({ url: proxy.url, connectTimeoutMs: 300 }))
      assert.ok(Date.now() - started < 2_000)
    } finally {
      await proxy.close()
    }
  })

  it('admin reconnects after a server restart', async () => {
    await ctx.server.restart()
    assert.equal(await ctx.admin.get('kind'), null)
  })
})
