import { type LogEvent, readLog } from './log.js'

/**
 * The histories the checker works on, rebuilt from the logs alone: what each
 * worker said about each grant, and what the nemesis did when.
 */

/** How a grant holds its key; logs without a kind (older runs) are exclusive. */
export type GrantKind = 'exclusive' | 'shared' | 'semaphore'

/** One acquisition, from `acquired` to its end by the library's own account. */
export interface Grant {
  w: number
  pid: number
  key: string
  token: string
  kind: GrantKind
  /** The semaphore's limit; 0 for the other kinds. */
  limit: number
  /** The fencing token as logged ('undefined' without fencing). */
  fence: string
  /** When the `acquire` call that produced it started. */
  attemptAt: number
  start: number
  /** Returned already not held: acquire handed out a lock past its deadline. */
  doa: boolean
  /** Latest (time + remainingMs) of an observation while held. */
  deadline: number | undefined
  lastHeldObsAt: number | undefined
  notHeldAt: number | undefined
  lostAt: number | undefined
  lostReason: string | undefined
  releaseStartAt: number | undefined
  releasedAt: number | undefined
  releaseResult: boolean | undefined
  /** Earliest of release-start, lost, a not-held observation, the last known deadline. */
  end: number
}

/** One `acquire` call and when it ended (acquired, failed, or the worker restarted). */
export interface Attempt {
  w: number
  pid: number
  key: string
  at: number
  endAt: number
  outcome: 'acquired' | 'error' | 'unknown'
  code?: string
}

export interface CounterWrite {
  w: number
  pid: number
  key: string
  token: string
  value: number
  at: number
  confirmed: boolean
}

/** A shared holder's read of the counter (sent while held with the write margin left). */
export interface CounterRead {
  w: number
  key: string
  token: string
  value: number
  at: number
}

export interface FencedWrite {
  w: number
  key: string
  token: string
  at: number
  accepted: boolean
}

/** A fault as the nemesis logged it. */
export interface FaultWindow {
  kind: string
  start: number
  end: number
  w?: number
  pid?: number
  keys?: string[]
}

export interface History {
  grants: Grant[]
  attempts: Attempt[]
  writes: CounterWrite[]
  reads: CounterRead[]
  fenced: FencedWrite[]
  faults: FaultWindow[]
  errors: LogEvent[]
  /** Events per kind, for the report. */
  events: number
}

const num = (v: unknown): number => Number(v)

function openGrant(e: LogEvent, attemptAt: number): Grant {
  const held = e.held === true
  return {
    w: num(e.w),
    pid: num(e.pid),
    key: String(e.key),
    token: String(e.token),
    kind: e.kind === 'shared' || e.kind === 'semaphore' ? e.kind : 'exclusive',
    limit: e.kind === 'semaphore' ? num(e.limit) : 0,
    fence: String(e.fence),
    attemptAt,
    start: e.t,
    doa: !held,
    deadline: held ? e.t + num(e.rem) : undefined,
    lastHeldObsAt: held ? e.t : undefined,
    notHeldAt: held ? undefined : e.t,
    lostAt: undefined,
    lostReason: undefined,
    releaseStartAt: undefined,
    releasedAt: undefined,
    releaseResult: undefined,
    end: e.t,
  }
}

/** Folds an observation (`obs`, `write`, `skip-write`) into its grant. */
function observe(g: Grant, e: LogEvent): void {
  if (e.held === true) {
    if (g.lastHeldObsAt === undefined || e.t >= g.lastHeldObsAt) {
      g.lastHeldObsAt = e.t
      g.deadline = e.t + num(e.rem)
    }
  } else if (e.held === false) {
    g.notHeldAt = Math.min(g.notHeldAt ?? e.t, e.t)
  }
}

function minDefined(...xs: (number | undefined)[]): number {
  let m = Number.POSITIVE_INFINITY
  for (const x of xs) if (x !== undefined && x < m) m = x
  return m
}

function readWorker(path: string, h: History): void {
  const events = readLog(path)
  h.events += events.length
  const grants = new Map<string, Grant>()
  const writes = new Map<string, CounterWrite>()
  let pending: Attempt | undefined
  const close = (at: number, outcome: Attempt['outcome'], code?: string): void => {
    if (!pending) return
    pending.endAt = at
    pending.outcome = outcome
    if (code !== undefined) pending.code = code
    h.attempts.push(pending)
    pending = undefined
  }
  for (const e of events) {
    const token = e.token as string | undefined
    const g = token === undefined ? undefined : grants.get(token)
    switch (e.ev) {
      case 'start':
        close(e.t, 'unknown')
        break
      case 'attempt':
        close(e.t, 'unknown')
        pending = {
          w: num(e.w),
          pid: num(e.pid),
          key: String(e.key),
          at: e.t,
          endAt: e.t,
          outcome: 'unknown',
        }
        break
      case 'acquired': {
        const grant = openGrant(e, pending?.at ?? e.t)
        grants.set(grant.token, grant)
        h.grants.push(grant)
        close(e.t, 'acquired')
        break
      }
      case 'obs':
      case 'skip-write':
        if (g) observe(g, e)
        break
      case 'read':
        if (g) observe(g, e)
        h.reads.push({ w: num(e.w), key: String(e.key), token: String(token), value: num(e.value), at: e.t })
        break
      case 'write': {
        if (g) observe(g, e)
        const cw: CounterWrite = {
          w: num(e.w),
          pid: num(e.pid),
          key: String(e.key),
          token: String(token),
          value: num(e.value),
          at: e.t,
          confirmed: false,
        }
        writes.set(`${token}:${cw.value}`, cw)
        h.writes.push(cw)
        break
      }
      case 'write-ok': {
        const cw = writes.get(`${token}:${num(e.value)}`)
        if (cw) cw.confirmed = true
        break
      }
      case 'fenced':
        h.fenced.push({
          w: num(e.w),
          key: String(e.key),
          token: String(token),
          at: e.t,
          accepted: e.accepted === true,
        })
        break
      case 'lost':
        if (g && g.lostAt === undefined) {
          g.lostAt = e.t
          g.lostReason = String(e.reason)
        }
        break
      case 'release-start':
        if (g) g.releaseStartAt ??= e.t
        break
      case 'released':
        if (g) {
          g.releasedAt = e.t
          g.releaseResult = e.result === true
        }
        break
      case 'error':
        h.errors.push(e)
        if (e.op === 'acquire') close(e.t, 'error', String(e.code))
        break
    }
  }
  for (const g of grants.values()) {
    g.end = g.doa ? g.start : minDefined(g.releaseStartAt, g.lostAt, g.notHeldAt, g.deadline)
  }
}

function readNemesis(path: string): FaultWindow[] {
  const open = new Map<string, FaultWindow>()
  const out: FaultWindow[] = []
  for (const e of readLog(path)) {
    const id = `${e.kind}:${e.planned}`
    if (e.ev === 'fault-start') {
      const f: FaultWindow = { kind: String(e.kind), start: e.t, end: Number.POSITIVE_INFINITY }
      if (e.w !== undefined) f.w = num(e.w)
      if (e.pid !== undefined) f.pid = num(e.pid)
      if (Array.isArray(e.keys)) f.keys = e.keys as string[]
      open.set(id, f)
      out.push(f)
    } else if (e.ev === 'fault-end') {
      const f = open.get(id)
      if (f) f.end = e.t
      open.delete(id)
    }
  }
  // A fault still open when the log ends was healed by the cell's shutdown.
  for (const f of out) if (f.end === Number.POSITIVE_INFINITY) f.end = f.start
  return out
}

export function readHistory(workerLogs: readonly string[], nemesisLog: string): History {
  const h: History = {
    grants: [],
    attempts: [],
    writes: [],
    reads: [],
    fenced: [],
    faults: [],
    errors: [],
    events: 0,
  }
  for (const path of workerLogs) readWorker(path, h)
  h.faults = readNemesis(nemesisLog)
  return h
}
