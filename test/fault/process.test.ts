import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { Locker } from '../../src/index.js'
import { spawnWorker } from '../helpers/processes.js'
import { type RedisServer, startRedis } from '../helpers/redis-server.js'

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'

describe('faults in the holder process', () => {
  let server: RedisServer
  let admin: Redis
  before(async () => {
    server = await startRedis()
    admin = new Redis(server.url)
  })
  after(async () => {
    admin.disconnect()
    await server.stop()
  })

  test('holder SIGSTOPped past its lease: on resume it knows at once; its stale write and late release do no harm', async () => {
    const lifetimeMs = 400
    let peer: Socket | undefined
    const io = createServer((s) => {
      peer = s
    })
    await new Promise<void>((r) => io.listen(0, '127.0.0.1', r))
    const ioPort = (io.address() as { port: number }).port
    const holder = spawnWorker(fixture('paused-holder.ts'), [
      server.url,
      'paused',
      String(lifetimeMs),
      String(ioPort),
    ])
    const held = await holder.waitForLine((l) => l.startsWith('held '), 10_000)
    const oldFence = BigInt(held.slice(5))
    holder.kill('SIGSTOP')
    // The next owner takes the key once the frozen holder's lease is gone...
    const locker = await Locker.fromUrl(server.url)
    const next = await locker.acquire('paused', { retryTimeoutMs: 3000, retryIntervalMs: 50, fencing: true })
    assert.ok(next.fence > oldFence)
    await admin.set('fenced-store', String(next.fence))
    // ...and the frozen holder has I/O waiting for it when it wakes up.
    peer?.write('x')
    await sleep(100)
    holder.kill('SIGCONT')
    const report = JSON.parse(await holder.waitForLine((l) => l.startsWith('{'), 10_000)) as Record<
      string,
      unknown
    >
    assert.deepEqual(report, { aborted: true, held: false, written: 0, released: false })
    assert.equal(await admin.get('paused'), next.token, 'the late release deleted the new owner’s lock')
    await next.release()
    await locker.close()
    await holder.exited
    io.close()
  })

  test('wall clock stepped +1 h and −1 h (libfaketime): deadlines and extensions do not move', async (t) => {
    assert.ok(existsSync(LIBFAKETIME), `libfaketime not found at ${LIBFAKETIME}: apt-get install -y faketime`)
    const dir = mkdtempSync(join(tmpdir(), 'arl-faketime-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const stamp = join(dir, 'offset')
    writeFileSync(stamp, '+0')
    const holder = spawnWorker(fixture('clock-jump-holder.ts'), [server.url, 'jump', '600', '2400'], {
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME_TIMESTAMP_FILE: stamp,
      FAKETIME_NO_CACHE: '1',
      // Real clock steps (NTP, an operator) move the wall clock only.
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    })
    const token = (await holder.waitForLine((l) => l.startsWith('held '), 10_000)).slice(5)
    await sleep(500)
    writeFileSync(stamp, '+1h')
    for (let i = 0; i < 8; i++) {
      assert.equal(await admin.get('jump'), token)
      await sleep(100)
    }
    writeFileSync(stamp, '-1h')
    for (let i = 0; i < 8; i++) {
      assert.equal(await admin.get('jump'), token)
      await sleep(100)
    }
    await holder.exited
    const beats = holder
      .stdoutLines()
      .filter((l) => l.startsWith('{"now"'))
      .map((l) => JSON.parse(l) as { now: number; held: boolean; aborted: boolean })
    const span = Math.max(...beats.map((b) => b.now)) - Math.min(...beats.map((b) => b.now))
    assert.ok(span > 2 * 3_600_000 - 60_000, `the wall clock did not jump (span ${span} ms)`)
    assert.ok(
      beats.every((b) => b.held && !b.aborted),
      'the lock wavered when the wall clock moved',
    )
    const last = JSON.parse(holder.stdoutLines().at(-1) as string) as {
      released: boolean
      stats: { lost: number }
    }
    assert.equal(last.released, true)
    assert.equal(last.stats.lost, 0)
  })
})
