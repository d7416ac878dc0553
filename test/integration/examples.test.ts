import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { spawnWorker } from '../helpers/processes.js'
import { type RedisServer, startRedis } from '../helpers/redis-server.js'

// The README's examples are real files; each must run to completion against a
// test Redis, importing the built package by its name as a user would.
const dir = fileURLToPath(new URL('../../examples/', import.meta.url))
const examples = readdirSync(dir).filter((f) => f.endsWith('.ts'))

describe('examples', () => {
  let server: RedisServer
  before(async () => {
    server = await startRedis()
  })
  after(() => server.stop())

  for (const file of examples) {
    test(`examples/${file} runs`, async () => {
      const proc = spawnWorker(`${dir}${file}`, [], { REDIS_URL: server.url })
      const exit = await proc.exited
      assert.equal(exit.code, 0, `${file} failed:\n${proc.stdoutLines().join('\n')}\n${proc.stderrText()}`)
    })
  }
})
