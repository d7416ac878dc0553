import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { Locker } from '../../src/index.js'
import { CLIENT_KINDS } from '../helpers/matrix.js'
import { spawnWorker } from '../helpers/processes.js'
import { type RedisServer, startRedis } from '../helpers/redis-server.js'

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))

describe('across processes', () => {
  let lockServer: RedisServer
  let counterServer: RedisServer
  before(async () => {
    lockServer = await startRedis()
    counterServer = await startRedis()
  })
  after(async () => {
    await lockServer.stop()
    await counterServer.stop()
  })

  async function runCounter(
    variant: 'correct' | 'broken',
    kind: string,
    workers: number,
    iterations: number,
  ) {
    const counter = new Redis(counterServer.url)
    await counter.del('count')
    const procs = Array.from({ length: workers }, () =>
      spawnWorker(fixture('counter-worker.ts'), [
        lockServer.url,
        counterServer.url,
        variant,
        kind,
        String(iterations),
      ]),
    )
    const exits = await Promise.all(procs.map((p) => p.exited))
    for (const e of exits) assert.equal(e.code, 0, 'worker failed')
    const count = Number(await counter.get('count'))
    await counter.quit()
    return count
  }

  for (const kind of CLIENT_KINDS) {
    test(`4 processes never overlap: a non-atomic counter loses no update [${kind}]`, async () => {
      const count = await runCounter('correct', kind, 4, 25)
      assert.equal(count, 100)
    })
  }

  test('negative control: the same check catches a lock without NX', async () => {
    const count = await runCounter('broken', 'ioredis', 4, 25)
    assert.ok(count < 100, `the checker must see lost updates with a broken lock; got ${count}`)
  })

  test('a SIGKILLed holder’s lock is taken over within lifetime + retry interval + margin', async () => {
    const lifetimeMs = 1000
    const retryIntervalMs = 200
    const holder = spawnWorker(fixture('hold-worker.ts'), [lockServer.url, 'passive', String(lifetimeMs)])
    await holder.waitForLine((line) => line.startsWith('held '), 10_000)
    const locker = await Locker.fromUrl(lockServer.url)
    // Let a couple of extensions happen first, so the lease is a fresh one.
    await sleep(600)
    holder.kill('SIGKILL')
    const killedAt = performance.now()
    await holder.exited
    const lock = await locker.acquire('passive', { retryTimeoutMs: 5000, retryIntervalMs })
    const took = performance.now() - killedAt
    assert.ok(took <= lifetimeMs + retryIntervalMs + 250, `took ${Math.round(took)} ms`)
    await lock.release()
    await locker.close()
  })

  for (const mode of ['owned', 'borrowed']) {
    test(`a program that is done exits by itself: no leaked timers or connections (${mode} client)`, async () => {
      const proc = spawnWorker(fixture('exit-worker.ts'), [lockServer.url, mode])
      const started = performance.now()
      const result = await Promise.race([proc.exited, sleep(8000).then(() => 'hung' as const)])
      if (result === 'hung') proc.kill('SIGKILL')
      if (result === 'hung') assert.fail('the process did not exit by itself')
      assert.equal(result.code, 0)
      assert.ok(proc.stdoutLines().includes('finished'))
      assert.ok(performance.now() - started < 8000)
    })
  }
})
