/** Minimal types for `cluster-key-slot` (it ships none and there is no @types package). */
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot (0..16383) of a key, honouring `{hash tags}`. */
  function calculateSlot(key: string | readonly number[]): number
  namespace calculateSlot {
    /** The common slot of all keys, or -1 when they differ. */
    function generateMulti(keys: readonly string[]): number
  }
  export = calculateSlot
}
