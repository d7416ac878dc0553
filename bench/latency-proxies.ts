// Child process of `npm run bench:scale`: one loopback delay proxy (the test helper's
// FaultProxy in 'delay' mode) in front of each given redis-server port, so the quorum
// rows can also be measured with a network round trip in the way, as across hosts.
// argv: <one-way delay ms> <port>...; prints the proxies' ports as one JSON line, then
// runs until its parent kills it (by PID) or closes its stdin.
import { type FaultProxy, startProxy } from '../test/helpers/proxy.js'
import { LOOPBACK } from './redis.js'

const [delayArg, ...portArgs] = process.argv.slice(2)
const ms = Number(delayArg)
if (!Number.isFinite(ms) || ms < 0 || portArgs.length === 0) {
  process.stderr.write('usage: latency-proxies.ts <one-way delay ms> <port>...\n')
  process.exit(2)
}
const proxies: FaultProxy[] = []
for (const port of portArgs) {
  const proxy = await startProxy({ host: LOOPBACK, port: Number(port) })
  proxy.setMode({ kind: 'delay', ms })
  proxies.push(proxy)
}
process.stdout.write(`${JSON.stringify(proxies.map((p) => p.port))}\n`)
process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
