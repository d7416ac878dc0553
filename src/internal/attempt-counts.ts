/** Keys with no attempt in flight kept in the counts before they are dropped together. */
const SWEEP_AT = 256

/**
 * Attempts in flight per key. A key whose count falls to 0 stays until
 * {@link SWEEP_AT} such keys have piled up, then they go together: deleting each at
 * once would make the Map reallocate its table on most cycles of an uncontended loop
 * on fresh keys (see internal/links.ts).
 */
export class AttemptCounts {
  readonly #counts = new Map<string, number>()
  /** Keys in the map at 0. */
  #idle = 0

  /** Counts an attempt at `key` in flight, until {@link AttemptCounts.end}. */
  begin(key: string): void {
    const n = this.#counts.get(key)
    if (n === 0) this.#idle--
    this.#counts.set(key, (n ?? 0) + 1)
  }

  end(key: string): void {
    const n = this.#counts.get(key)
    if (n === undefined || n <= 0) return
    this.#counts.set(key, n - 1)
    if (n === 1 && ++this.#idle >= SWEEP_AT) this.#sweep()
  }

  /** Attempts in flight on `key`. */
  on(key: string): number {
    return this.#counts.get(key) ?? 0
  }

  #sweep(): void {
    for (const [key, n] of this.#counts) if (n === 0) this.#counts.delete(key)
    this.#idle = 0
  }
}
