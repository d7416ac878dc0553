import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Locker } from '../../src/index.js'
import { describeMatrix } from '../helpers/matrix.js'
import { waitFor } from '../helpers/wait.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

describeMatrix('garbage collection', (ctx) => {
  test('a Lock dropped without release stops being extended and is released once collected', async () => {
    // Watched for collection from its first extension on (at 2 s), so the key is
    // extended once and then released; a missed collection would keep extending it.
    const locker = new Locker(await ctx.client(), { lifetimeMs: 4000 })
    // Acquire in a separate frame and keep nothing: the crate's "ignore the return value".
    await (async () => {
      await locker.acquire('gc:dropped')
    })()
    assert.equal(await ctx.admin.exists('gc:dropped'), 1)
    await waitFor(
      async () => {
        gc()
        await new Promise((r) => setImmediate(r))
        return (await ctx.admin.exists('gc:dropped')) === 0
      },
      { timeoutMs: 8000, intervalMs: 50, message: 'the dropped lock was not released after GC' },
    )
    assert.equal(locker.stats().held, 0)
    assert.equal(locker.stats().lost, 1)
    assert.equal(locker.stats().lostByReason.abandoned, 1)
    await locker.close()
  })

  test('releasing a collected Lock wakes a waiter of the same Locker at once', async () => {
    // Our subscriber ignores our own release messages, so the Locker must wake its
    // own waiters itself, as it does on an explicit release.
    const locker = new Locker(await ctx.client(), { lifetimeMs: 4000 })
    await (async () => {
      await locker.acquire('gc:waited')
    })()
    const waiting = locker.acquire('gc:waited', { retryIntervalMs: 30_000, retryTimeoutMs: 30_000 })
    let acquiredAt: number | undefined
    void waiting.then(() => {
      acquiredAt = performance.now()
    })
    let releasedAt: number | undefined
    await waitFor(
      async () => {
        gc()
        await new Promise((r) => setImmediate(r))
        if (releasedAt === undefined && locker.stats().lost === 1) releasedAt = performance.now()
        return acquiredAt !== undefined
      },
      { timeoutMs: 8000, intervalMs: 50, message: 'the waiter got the collected lock' },
    )
    // Woken by the release, not by the holder's TTL running out (up to 4 s after its extension).
    assert.ok(acquiredAt! - releasedAt! < 1000, `waited ${Math.round(acquiredAt! - releasedAt!)} ms`)
    await (await waiting).release()
    await locker.close()
  })
})
