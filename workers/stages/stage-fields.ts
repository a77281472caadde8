/**
 * Where a stage finds a tick's fields in the records it is handed: f64 offsets from the record's
 * start, given once at construction. A stage reads `rec[o + offset]` on the hot path, so it needs
 * no import of the caller's layout (the shard passes tick.ts offsets; tests use a default).
 *
 * Why records and not arguments: a double passed to a call that V8 does not inline is boxed in a
 * fresh HeapNumber, every call. A Float64Array and an integer offset cross any call for free.
 */

/** Check `given` (or take `defaults`) and return the offsets as a frozen object of the same keys. */
export function stageFields<K extends string>(
  owner: string, given: Readonly<Record<K, number>> | undefined, defaults: Readonly<Record<K, number>>,
): Readonly<Record<K, number>> {
  if (given === undefined) return defaults;
  if (given === null || typeof given !== 'object') {
    throw new TypeError(`${owner}: fields must be an object of f64 offsets, e.g. ${JSON.stringify(defaults)}`);
  }
  const out = {} as Record<K, number>;
  const seen = new Map<number, string>();
  for (const k of Object.keys(defaults) as K[]) {
    const off = given[k];
    if (!Number.isInteger(off) || off < 0 || off > 0xffff) {
      throw new RangeError(`${owner}: fields.${k} must be an f64 offset (an integer 0..65535), got ${String(off)}`);
    }
    const other = seen.get(off);
    if (other !== undefined) throw new RangeError(`${owner}: fields.${k} and fields.${other} are both at offset ${off}`);
    seen.set(off, k);
    out[k] = off;
  }
  return Object.freeze(out);
}

/** Words a record needs to hold every field: the largest offset + 1. */
export function stageWords(fields: Readonly<Record<string, number>>): number {
  return Math.max(...Object.values(fields)) + 1;
}
