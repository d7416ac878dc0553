import type { KeyState } from './lock-backend.js'

/**
 * The state of a key no token holds on a majority: a shared lock or semaphore when a
 * majority reports that kind (with as many holders as a majority has at least: the
 * quorum-th longest list), else free.
 */
export function sharedState(answered: readonly KeyState[], quorum: number, fence: bigint | null): KeyState {
  const free: KeyState = { token: null, pttl: -2, fence, kind: null, limit: null, holders: [] }
  const sameKind = new Map<string, KeyState[]>()
  for (const state of answered) {
    if (state.kind !== 'shared' && state.kind !== 'semaphore') continue
    const id = `${state.kind}:${state.limit}`
    sameKind.set(id, [...(sameKind.get(id) ?? []), state])
  }
  for (const states of sameKind.values()) {
    if (states.length < quorum) continue
    const byCount = [...states].sort((a, b) => b.holders.length - a.holders.length)
    const chosen = byCount[quorum - 1] as KeyState
    return { ...chosen, fence }
  }
  return free
}
