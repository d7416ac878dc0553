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
})
