import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A Redis URL to use: `REDIS_URL` if set, else a private `redis-server` started here. */
export async function redisForExample(): Promise<{ url: string; stop(): void }> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop() {} }
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'async-redis-lock-demo-'))
  const server = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  )
  const failed = new Promise<never>((_, reject) => {
    server.once('error', (err) =>
      reject(
        new Error(
          `could not start redis-server (${err.message}); install it (apt-get install -y redis-server) or set REDIS_URL`,
        ),
      ),
    )
  })
  const stop = () => {
    server.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.once('exit', stop)
  await Promise.race([failed, waitForPort(port)])
  return { url: `redis://127.0.0.1:${port}`, stop }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => (port === 6379 ? resolve(freePort()) : resolve(port)))
    })
  })
}

async function waitForPort(port: number): Promise<void> {
  const { connect } = await import('node:net')
  for (let i = 0; i < 250; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.end()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`redis-server did not start on port ${port}`)
}
