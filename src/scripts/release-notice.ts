// The release message of RELEASE_HOLDER (holders.ts), read by each Locker's subscriber.
/**
 * What a release message means to this Locker: 'own' for its own release (handled
 * locally); 'any' for a release that names nobody; for one that names the Lockers a
 * semaphore's free permits go to (`<sender> <ms> <id> <id>…`, see RELEASE_HOLDER),
 * 'named' when this one is among them, else the ms until their queue entries run out
 * (before then the arrival queue would turn it away, so it neither attempts nor
 * counts it as a release its attempt raced).
 */
export function readNotice(message: string, selfId: string): 'own' | 'named' | 'any' | number {
  const space = message.indexOf(' ')
  if (space === -1) return message === selfId ? 'own' : 'any'
  if (message.slice(0, space) === selfId) return 'own'
  const next = message.indexOf(' ', space + 1)
  if (next !== -1 && message.includes(selfId, next + 1)) return 'named'
  const ms = Number(message.slice(space + 1, next === -1 ? undefined : next))
  return Number.isFinite(ms) ? ms : 'any'
}
