/**
 * A child process that takes a shared hold or a semaphore permit (ioredis, through
 * `Locker.fromUrl`), prints "held <token>" and keeps it, auto-extended, until killed:
 * the crashed holder of the kinds tests (spawned with `spawnWorker`, SIGKILLed by PID).
 *
 * argv: url key lifetimeMs mode, where mode is `shared` or `limit=<N>`
 */
import { Locker } from '../../src/index.js'

const [url, key, lifetime, mode] = process.argv.slice(2) as [string, string, string, string]
const options = mode === 'shared' ? { shared: true } : { limit: Number(mode.replace(/^limit=/, '')) }
const locker = await Locker.fromUrl(url, { lifetimeMs: Number(lifetime) })
const lock = await locker.acquire(key, { ...options, retryTimeoutMs: 10_000 })
console.log(`held ${lock.token}`)
setInterval(() => {}, 1000)
