// ScriptRunner.call: the bound, the decode and the NOSCRIPT fallback in one step.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ScriptRunner } from '../../src/backends/script-runner.js'
import { BackendError } from '../../src/errors.js'
import { RELEASE } from '../../src/scripts/index.js'
import { FakeAdapter } from '../helpers/fake-adapter.js'

const request = { keys: ['k'], token: 'secret-token', publisherId: 'me' }

function runner(): { adapter: FakeAdapter; runner: ScriptRunner } {
  const adapter = new FakeAdapter()
  // The script counts as loaded: calls go out as EVALSHA.
  return { adapter, runner: new ScriptRunner(adapter, new Set([RELEASE.sha])) }
}

test('a reply is decoded; a Redis error is wrapped without the arguments; a decode error is not wrapped', async () => {
  const { adapter, runner: r } = runner()
  adapter.handler = () => [1, 2]
  assert.deepEqual(await r.call(RELEASE, request, 1000, 'release'), { removed: 1, receivers: 2 })
  adapter.handler = () => Promise.reject(new Error('ERR something for secret-token'))
  const err = await r.call(RELEASE, request, 1000, 'release').catch((e: unknown) => e)
  assert.ok(err instanceof BackendError)
  assert.doesNotMatch(String((err as BackendError).message), /secret-token/)
  adapter.handler = () => 'not a release reply'
  const bad = await r.call(RELEASE, request, 1000, 'release').catch((e: unknown) => e)
  assert.ok(bad instanceof BackendError, 'a decode error is a BackendError of its own')
  assert.match(bad.message, /^unexpected reply to release/, 'passed as it is, not wrapped as a Redis failure')
})

test('NOSCRIPT: the source is sent once within the same bound and its reply decoded', async () => {
  const { adapter, runner: r } = runner()
  adapter.handler = (call) =>
    call.command === 'evalsha' ? Promise.reject(new Error('NOSCRIPT No matching script')) : 3
  assert.deepEqual(await r.call(RELEASE, request, 1000, 'release'), { removed: 3, receivers: 0 })
  assert.deepEqual(
    adapter.calls.map((c) => c.command),
    ['evalsha', 'eval'],
  )
})

test('no reply within the bound: rejected; a late NOSCRIPT then sends nothing, a late reply is dropped', async (t) => {
  const { adapter, runner: r } = runner()
  adapter.handler = adapter.hang()
  // The runner's watchdog timer is unref'd: keep the test's event loop alive meanwhile.
  const alive = setInterval(() => {}, 1000)
  t.after(() => clearInterval(alive))
  const err = await r.call(RELEASE, request, 30, 'release').catch((e: unknown) => e)
  assert.ok(err instanceof BackendError && /no reply from Redis within 30 ms/.test(err.message))
  adapter.hung[0]?.reject(new Error('NOSCRIPT No matching script'))
  await new Promise((resolve) => setTimeout(resolve, 20))
  assert.deepEqual(
    adapter.calls.map((c) => c.command),
    ['evalsha'],
    'the caller gave up: no EVAL after the bound',
  )
  const late = r.call(RELEASE, request, 30, 'release').catch((e: unknown) => e)
  const settled = await late
  assert.ok(settled instanceof BackendError)
  adapter.hung[1]?.resolve('not a release reply') // would be a decode error: dropped, no unhandled rejection
  await new Promise((resolve) => setTimeout(resolve, 20))
  adapter.settleHung()
})
