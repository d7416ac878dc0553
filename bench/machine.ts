// What the results were measured on, recorded with them.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { FLOORS, LIBRARIES } from './adapters.js'

export interface Machine {
  date: string
  /** Share of all cores busy with other work in the second before the run (and after it). */
  busyBefore: number
  busyAfter?: number
  host: string
  cpuModel: string
  cores: number
  node: string
  redis: string
  pinned: string
  commit: string
  versions: Record<string, string>
}

const PACKAGES: Record<string, string> = {
  'async-redis-lock': 'async-redis-lock',
  redlock4: 'redlock4',
  redlock5: 'redlock5',
  'redis-semaphore': 'redis-semaphore',
  'redlock-universal': 'redlock-universal',
  'sesamecare-redlock': '@sesamecare-oss/redlock',
  ioredis: 'ioredis',
}

function version(pkg: string): string {
  try {
    // Read package.json files directly: not every package exports its package.json.
    const require = createRequire(import.meta.url)
    const main = require.resolve(pkg)
    let dir = main
    for (let i = 0; i < 6; i++) {
      dir = dir.slice(0, dir.lastIndexOf('/'))
      try {
        const json = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')) as {
          name?: string
          version?: string
        }
        if (json.version && json.name) return json.version
      } catch {}
    }
  } catch {}
  return 'unknown'
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

/** Local date as YYYY-MM-DD. */
export function today(): string {
  const d = new Date()
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`
}

function cpuTimes(): { busy: number; total: number } {
  try {
    const fields =
      readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? []
    const total = fields.reduce((a, b) => a + b, 0)
    // idle + iowait are the only "not busy" columns.
    return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total }
  } catch {
    return { busy: 0, total: 0 }
  }
}

/**
 * Fraction of all CPU time spent busy over `ms`, machine-wide. Taken while the bench
 * itself runs nothing, it shows how much other work competed with the measurements.
 */
export async function busyShare(ms = 1000): Promise<number> {
  const a = cpuTimes()
  await new Promise((r) => setTimeout(r, ms))
  const b = cpuTimes()
  return b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : Number.NaN
}

export function describeMachine(redisVersion: string, pinned: string, busyBefore: number): Machine {
  let cpuModel = 'unknown'
  try {
    cpuModel = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpuModel
  } catch {
    cpuModel = os.cpus()[0]?.model ?? cpuModel
  }
  const versions: Record<string, string> = {}
  for (const name of [...LIBRARIES.filter((l) => !FLOORS.includes(l)), 'ioredis']) {
    versions[name] = version(PACKAGES[name] ?? name)
  }
  return {
    date: new Date().toISOString(),
    busyBefore,
    host: os.hostname(),
    cpuModel,
    cores: os.cpus().length,
    node: process.version,
    redis: redisVersion,
    pinned,
    commit: git(['describe', '--always', '--dirty']),
    versions,
  }
}

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)} %` : 'n/a')

export function renderMachine(m: Machine): string {
  const libs = Object.entries(m.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
  return [
    `- date: ${m.date}, host: ${m.host}, commit: ${m.commit}`,
    `- CPU: ${m.cpuModel}, ${m.cores} cores; Node ${m.node}; Redis ${m.redis}`,
    `- pinning: ${m.pinned}`,
    `- other load on the machine (all cores busy share, 1 s sample): ${pct(m.busyBefore)} before the run, ${pct(m.busyAfter ?? Number.NaN)} after${m.busyBefore > 0.1 || (m.busyAfter ?? 0) > 0.1 ? ' — **other processes were busy: treat the numbers with care**' : ''}`,
    `- versions: ${libs}`,
  ].join('\n')
}
