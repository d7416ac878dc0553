/**
 * A set whose members carry their own links: adding and removing allocate nothing.
 *
 * The hot path of an uncontended lock puts one lease in the lease table and one call
 * in the script runner's watchdog list, and takes both out again, every cycle. A
 * `Set` that goes from empty to one member and back reallocates its hash table each
 * time (about 150 bytes per add and delete on V8, measured), garbage that a Locker
 * doing thousands of cycles a second turns into extra young-generation collections.
 * Here the links are two fields on the member itself.
 *
 * A member is in at most one list at a time. A removed member keeps no links, so a
 * Lock its caller holds on to long after release keeps nothing else alive. The walks
 * (the extension timer's, the watchdog's) are rare: they take a snapshot
 * ({@link LinkedSet.toArray}), so members may come and go while one is processed.
 *
 * @module
 */

/** The fields a member of a {@link LinkedSet} carries. */
export interface Links<T> {
  /** The neighbours while listed. */
  prev: T | undefined
  next: T | undefined
  /** True while in the list. */
  listed: boolean
}

export class LinkedSet<T extends Links<T>> {
  #head: T | undefined
  #tail: T | undefined
  #size = 0

  get size(): number {
    return this.#size
  }

  /** Appends `item` (insertion order is iteration order). */
  add(item: T): void {
    if (item.listed) return
    item.listed = true
    item.prev = this.#tail
    item.next = undefined
    if (this.#tail) this.#tail.next = item
    else this.#head = item
    this.#tail = item
    this.#size++
  }

  /** Removes `item`; false when it was not listed. */
  delete(item: T): boolean {
    if (!item.listed) return false
    item.listed = false
    const { prev, next } = item
    if (prev) prev.next = next
    else this.#head = next
    if (next) next.prev = prev
    else this.#tail = prev
    item.prev = undefined
    item.next = undefined
    this.#size--
    return true
  }

  /** The members now, in insertion order: a snapshot, unaffected by later adds and deletes. */
  toArray(): T[] {
    const out: T[] = []
    for (let item = this.#head; item !== undefined; item = item.next) out.push(item)
    return out
  }
}
