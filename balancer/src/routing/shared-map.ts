// A read-only map that shares its entries with the map it was made from: a base map plus the changes
// since (at most MAX_CHANGES, then a flat copy is made). A worker's compiled table keeps one picker,
// spec key and implicit route per upstream; with 5,000 upstreams, copying those maps for every
// one-upstream delta cost ~2-3 ms of CPU, this costs the changes only (and a copy per 256 changes).

/** changes kept over a base before the next map is made flat (bounds lookups and the copies of changes) */
const MAX_CHANGES = 256;

const REMOVED: unique symbol = Symbol('removed');

export class SharedMap<K, V> implements ReadonlyMap<K, V> {
  private constructor(
    private readonly base: ReadonlyMap<K, V>,
    private readonly changes: ReadonlyMap<K, V | typeof REMOVED>,
    readonly size: number,
  ) {}

  /** A map as it is; the caller no longer changes it. */
  static of<K, V>(map: ReadonlyMap<K, V>): SharedMap<K, V> {
    return map instanceof SharedMap ? (map as SharedMap<K, V>) : new SharedMap(map, new Map(), map.size);
  }

  /** This map with `changed` applied (a value, or undefined = removed); this one is not touched. */
  with(changed: ReadonlyMap<K, V | undefined>): SharedMap<K, V> {
    if (changed.size === 0) return this;
    const changes = new Map(this.changes);
    let size = this.size;
    for (const [key, value] of changed) {
      const had = this.has(key);
      if (value === undefined) {
        if (!had) continue;
        size--;
        changes.set(key, REMOVED);
      } else {
        if (!had) size++;
        changes.set(key, value);
      }
    }
    if (changes.size <= MAX_CHANGES) return new SharedMap(this.base, changes, size);
    const flat = new Map(new SharedMap(this.base, changes, size));
    return new SharedMap(flat, new Map(), flat.size);
  }

  get(key: K): V | undefined {
    const c = this.changes.get(key);
    if (c !== undefined) return c === REMOVED ? undefined : c;
    return this.base.get(key);
  }

  has(key: K): boolean {
    const c = this.changes.get(key);
    if (c !== undefined) return c !== REMOVED;
    return this.base.has(key);
  }

  /** In the order a copied-and-changed Map would have: the base's keys first, then the added ones. */
  *entries(): MapIterator<[K, V]> {
    for (const [key, value] of this.base) {
      const c = this.changes.get(key);
      if (c === undefined) yield [key, value];
      else if (c !== REMOVED) yield [key, c];
    }
    for (const [key, c] of this.changes) if (c !== REMOVED && !this.base.has(key)) yield [key, c];
  }

  *keys(): MapIterator<K> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): MapIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) fn.call(thisArg, value, key, this);
  }
}
