// --tls-kv-prefix: follows the prefix with blocking queries (jittered backoff on failure). A refused
// pair keeps that name's previous good certificate; a name whose keys are gone is removed. After a
// change the prefix is read once more a moment later, so a cert and key written one after the
// other are seen together.
import type pino from 'pino';
import { backoffDelay, sleep } from '../../../common/backoff.js';
import { blockingFetch, type ConsulEndpoint } from '../discovery/blocking-query.js';
import { watchSlot, type WatchSlot } from '../discovery/watch-slot.js';
import type { CertEntry } from './certificate.js';
import { kvCertificates, type KvEntryJson } from './kv-pairs.js';

export interface KvSourceOptions {
  readonly endpoint: ConsulEndpoint;
  /** ends in '/' */
  readonly prefix: string;
  readonly waitMs: number;
  readonly log: pino.Logger;
  readonly onChange: (entries: readonly CertEntry[]) => void;
  readonly now?: () => number;
  /** pause before the confirming re-read after a change */
  readonly settleMs?: number;
  /** the watch's way through the primary's connection budget (blocking on a reserved slot, or polling); default: blocking */
  readonly slot?: WatchSlot;
}

export class KvSource {
  #lastGood = new Map<string, CertEntry>();
  #reported = new Map<string, string>();
  #first: Promise<void>;
  #gotFirst!: () => void;
  readonly done: Promise<void>;

  constructor(private readonly opts: KvSourceOptions, signal: AbortSignal) {
    this.#first = new Promise((r) => (this.#gotFirst = r));
    this.done = this.#loop(signal);
  }

  /** Resolves after the first answer (or failure) so start-up can wait for it, bounded. */
  first(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([this.#first, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]).finally(() => clearTimeout(timer));
  }

  /** the watch query (index > 0 blocks, or polls without a slot), or with `confirm` a plain read in the read share */
  async #read(index: number, signal: AbortSignal, confirm = false): Promise<{ entries: KvEntryJson[]; index: number }> {
    const slot = this.opts.slot ?? watchSlot(undefined);
    const get = (i: number, timeoutMs?: number) => blockingFetch(this.opts.endpoint, `/v1/kv/${this.opts.prefix}`, { recurse: '' }, { index: i, waitMs: this.opts.waitMs, signal, timeoutMs });
    const a = confirm ? await slot.read(signal, () => get(0, 10_000)) : await slot.query(signal, index, (c) => get(c.index, c.timeoutMs));
    if (a.status === 404) return { entries: [], index: a.index };
    if (a.status !== 200) throw new Error(`GET ${a.pathname} -> ${a.status}: ${a.text.slice(0, 200)}`);
    return { entries: JSON.parse(a.text) as KvEntryJson[], index: a.index };
  }

  async #loop(signal: AbortSignal): Promise<void> {
    let index = 0;
    let failures = 0;
    let lastIndex = -1;
    while (!signal.aborted) {
      try {
        let answer = await this.#read(index, signal);
        if (answer.index !== lastIndex && lastIndex !== -1) {
          await sleep(this.opts.settleMs ?? 50, signal);
          answer = await this.#read(0, signal, true);
        }
        lastIndex = answer.index;
        index = answer.index;
        failures = 0;
        this.#apply(answer.entries);
        this.#gotFirst();
      } catch (err) {
        if (signal.aborted) break;
        this.#gotFirst();
        const delay = backoffDelay({ baseMs: 250, maxMs: 10_000 }, failures++);
        this.opts.log.warn({ err: (err as Error).message, retryMs: delay }, 'certificate KV query failed; previous certificates kept');
        index = 0;
        await sleep(delay, signal);
      }
    }
  }

  #apply(raw: KvEntryJson[]): void {
    const { entries, problems, names } = kvCertificates(this.opts.prefix, raw, (this.opts.now ?? Date.now)());
    const next = new Map<string, CertEntry>();
    for (const e of entries) next.set(e.id, e);
    for (const p of problems) {
      const id = `kv:${p.name}`;
      const kept = this.#lastGood.get(id);
      if (kept) next.set(id, kept);
      if (this.#reported.get(id) !== p.code) {
        this.#reported.set(id, p.code);
        this.opts.log.warn({ name: p.name, code: p.code, kept: Boolean(kept) }, `${p.message}; ${kept ? 'previous certificate kept' : 'no certificate for it'}`);
      }
    }
    for (const id of [...this.#reported.keys()]) if (!problems.some((p) => `kv:${p.name}` === id) || !names.has(id.slice(3))) this.#reported.delete(id);
    this.#lastGood = next;
    this.opts.onChange([...next.values()]);
  }
}
