import { createHash } from 'node:crypto'
import { BackendError } from '../errors.js'

/** A Lua script with its SHA1, so callers can try EVALSHA first. */
export interface Script {
  readonly name: string
  readonly source: string
  readonly sha: string
}

/** The KEYS and ARGV of one script call. */
export interface ScriptArgs {
  readonly keys: readonly string[]
  readonly args: readonly string[]
}

/**
 * A script together with its contract: how a request becomes its KEYS and ARGV, and
 * how its reply becomes a result. Both are pure, so they are unit-tested without Redis.
 */
export interface TypedScript<Request, Result> extends Script {
  encode(request: Request): ScriptArgs
  /** @throws BackendError for a reply that does not have the documented shape. */
  decode(reply: unknown): Result
}

/** A script by name and source. */
export function script(name: string, source: string): Script {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') }
}

/** A script with its encoder and decoder. */
export function typedScript<Request, Result>(
  name: string,
  source: string,
  encode: (request: Request) => ScriptArgs,
  decode: (reply: unknown) => Result,
): TypedScript<Request, Result> {
  return { ...script(name, source), encode, decode }
}

/**
 * The same contract with another source: the test suite's deliberately broken
 * variants (negative controls), which must look the same to the caller.
 */
export function withSource<Request, Result>(
  typed: TypedScript<Request, Result>,
  source: string | undefined,
): TypedScript<Request, Result> {
  if (source === undefined) return typed
  return typedScript(`${typed.name}-replaced`, source, typed.encode, typed.decode)
}

/** The error for a reply of the wrong shape. */
export function unexpectedReply(operation: BackendError['operation'], reply: unknown): BackendError {
  return new BackendError(operation, `unexpected reply to ${operation}: ${safeJson(reply)}`)
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v)?.slice(0, 200) ?? String(v)
  } catch {
    return String(v)
  }
}

/** Decimal text of a lease length; nearly every lease of a Locker has the same one. */
let lastMs = -1
let lastMsText = ''
export function msText(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms
    lastMsText = String(ms)
  }
  return lastMsText
}
