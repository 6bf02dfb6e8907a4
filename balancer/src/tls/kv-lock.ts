// A lock in Consul KV built on check-and-set with an expiry written into the value: whoever finds
// the key absent, expired or its own takes it with ?cas=<ModifyIndex>; the holder refreshes it while
// it works; a holder that dies leaves a lock that is free again once its expiry passes. The expiry
// is the holder's wall clock: the instances' clocks must agree to well under the TTL.
import type { ConsulKv } from './consul-kv.js';

export interface LockRecord {
  readonly holder: string;
  /** ms since the epoch */
  readonly expiresAt: number;
}

export type LockDecision =
  | { readonly action: 'create' }
  | { readonly action: 'take'; readonly cas: number }
  | { readonly action: 'busy'; readonly holder: string; readonly expiresAt: number };

/** Pure: what to do about a lock key as it is now. */
export function lockDecision(existing: { record: LockRecord | undefined; modifyIndex: number } | undefined, me: string, nowMs: number): LockDecision {
  if (!existing) return { action: 'create' };
  const r = existing.record;
  if (!r || typeof r.holder !== 'string' || typeof r.expiresAt !== 'number') return { action: 'take', cas: existing.modifyIndex };
  if (r.holder === me || r.expiresAt <= nowMs) return { action: 'take', cas: existing.modifyIndex };
  return { action: 'busy', holder: r.holder, expiresAt: r.expiresAt };
}

export class KvLock {
  constructor(private readonly kv: ConsulKv, readonly key: string, readonly me: string, readonly ttlMs: number, private readonly now: () => number = Date.now) {}

  async #read(): Promise<{ record: LockRecord | undefined; modifyIndex: number } | undefined> {
    const v = await this.kv.get(this.key);
    if (!v) return undefined;
    let record: LockRecord | undefined;
    try {
      record = JSON.parse(v.value.toString('utf8')) as LockRecord;
    } catch {
      record = undefined;
    }
    return { record, modifyIndex: v.modifyIndex };
  }

  /** true when we hold it now (taken or refreshed). */
  async acquire(): Promise<boolean> {
    const d = lockDecision(await this.#read(), this.me, this.now());
    if (d.action === 'busy') return false;
    const value = JSON.stringify({ holder: this.me, expiresAt: this.now() + this.ttlMs } satisfies LockRecord);
    return this.kv.put(this.key, value, d.action === 'create' ? 0 : d.cas);
  }

  /** Extends our hold; false when the lock is no longer ours (expired and taken by another). */
  async refresh(): Promise<boolean> {
    const cur = await this.#read();
    if (!cur || cur.record?.holder !== this.me) return false;
    const value = JSON.stringify({ holder: this.me, expiresAt: this.now() + this.ttlMs } satisfies LockRecord);
    return this.kv.put(this.key, value, cur.modifyIndex);
  }

  /** Deletes the lock if it is still ours. */
  async release(): Promise<void> {
    const cur = await this.#read();
    if (cur && cur.record?.holder === this.me) await this.kv.delete(this.key, cur.modifyIndex);
  }
}
