import { rmSync } from 'node:fs'
import { startRedis } from '../helpers/redis-server.js'
import { Cell } from './cell.js'
import { readLog } from './log.js'

const variant = (process.argv[2] ?? 'correct') as 'correct' | 'skip-validity'
const stallMs = process.argv[3] ? Number(process.argv[3]) : undefined
const lock = await startRedis()
const store = await startRedis()
const dir = '/tmp/soak-scratch'
rmSync(dir, { recursive: true, force: true })
const cell = await Cell.start({
  run: 'x',
  dir,
  lock,
  storeUrl: store.url,
  keys: ['k1'],
  seed: 1,
  workers: [{ variant, ...(stallMs ? { stallMs } : {}) }, { variant: 'correct' }, { variant: 'correct' }],
  lifetimeMs: 300,
  extendIntervalMs: 100,
  retryTimeoutMs: 3000,
  maxRounds: 4,
  roundGapMs: 80,
  thinkMs: 20,
  durationMs: 4000,
})
if (stallMs) cell.slots[0]!.proxy.setMode({ kind: 'delay', ms: 50 })
await new Promise((r) => setTimeout(r, 4000))
await cell.stop()
for (const s of cell.slots) {
  const ev = readLog(s.logPath)
  const counts: Record<string, number> = {}
  for (const e of ev) counts[e.ev] = (counts[e.ev] ?? 0) + 1
  console.log(
    s.id,
    JSON.stringify(counts),
    ev
      .filter((e) => e.ev === 'error')
      .slice(0, 3)
      .map((e) => e.message),
  )
  console.log(ev.filter((e) => e.ev === 'acquired').slice(0, 3))
}
console.log(await store.command('KEYS', '*'), await store.command('GET', 'soak:x:k1:counter'))
await lock.stop()
await store.stop()
