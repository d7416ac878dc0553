import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { LinkedSet, type Links } from '../../src/internal/links.js'

interface Item extends Links<Item> {
  readonly id: number
}

function item(id: number): Item {
  return { id, prev: undefined, next: undefined, listed: false }
}

const ids = (set: LinkedSet<Item>) => set.toArray().map((i) => i.id)

describe('LinkedSet', () => {
  test('keeps insertion order; add and delete are idempotent; size follows', () => {
    const set = new LinkedSet<Item>()
    const [a, b, c, d] = [1, 2, 3, 4].map(item) as [Item, Item, Item, Item]
    for (const x of [a, b, c, d]) set.add(x)
    set.add(b) // already listed: no second entry, order unchanged
    assert.deepEqual(ids(set), [1, 2, 3, 4])
    assert.equal(set.size, 4)
    assert.equal(set.delete(b), true) // middle
    assert.equal(set.delete(b), false)
    assert.equal(set.delete(a), true) // head
    assert.equal(set.delete(d), true) // tail
    assert.deepEqual(ids(set), [3])
    assert.equal(set.size, 1)
    assert.equal(set.delete(c), true)
    assert.deepEqual(ids(set), [])
    assert.equal(set.size, 0)
    const e = item(5)
    set.add(e)
    assert.deepEqual(ids(set), [5])
  })

  test('a removed member keeps no links (it retains nothing), and a snapshot ignores later changes', () => {
    const set = new LinkedSet<Item>()
    const [a, b, c] = [1, 2, 3].map(item) as [Item, Item, Item]
    for (const x of [a, b, c]) set.add(x)
    const snapshot = set.toArray()
    set.delete(b)
    assert.equal(b.prev, undefined)
    assert.equal(b.next, undefined)
    assert.equal(b.listed, false)
    assert.equal(a.next, c)
    assert.equal(c.prev, a)
    // Deleting members while walking a snapshot (what the lease timer does) is safe.
    for (const x of snapshot) set.delete(x)
    assert.deepEqual(
      snapshot.map((x) => x.id),
      [1, 2, 3],
    )
    assert.equal(set.size, 0)
    assert.deepEqual(ids(set), [])
  })

  test('many adds and deletes in any order leave exactly the members still listed', () => {
    const set = new LinkedSet<Item>()
    const model = new Set<Item>()
    const pool = Array.from({ length: 50 }, (_, i) => item(i))
    let seed = 7
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    for (let step = 0; step < 5000; step++) {
      const x = pool[rand(pool.length)] as Item
      if (rand(2) === 0) {
        set.add(x)
        model.add(x)
      } else {
        assert.equal(set.delete(x), model.delete(x))
      }
      assert.equal(set.size, model.size)
    }
    assert.deepEqual(set.toArray(), [...model])
  })
})
