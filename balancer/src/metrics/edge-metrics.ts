// Per-worker figures of the edge controls and TCP services: connections per service and result,
// bytes each way, connect errors, a duration histogram, open connections (a gauge), and requests or
// connections refused by the access rules (denied) or rate limits (limited), per service and
// protocol. Counted in plain numbers; takeDelta() hands the primary what changed since the last call
// (it owns the totals, as for requests: a worker restart never makes a counter go back).
import { OTHER, UNKNOWN_SERVICE } from './label-values.js';
import type { RefusedDelta, TcpDelta } from './delta.js';

/** TCP connection duration buckets (seconds): a connection lives from milliseconds to hours. */
export const TCP_DURATION_BUCKETS_SECONDS: readonly number[] = [0.01, 0.1, 1, 10, 60, 600, 3600];

export type RefusalKind = 'denied' | 'limited';

class TcpFigures {
  readonly results = new Map<string, number>();
  bytesIn = 0;
  bytesOut = 0;
  connectErrors = 0;
  durationSum = 0;
  readonly buckets = new Float64Array(TCP_DURATION_BUCKETS_SECONDS.length + 1);
  dirty = false;
  open = 0;
}

export class EdgeFigures {
  readonly #tcp = new Map<string, TcpFigures>();
  readonly #refused = new Map<string, { service: string; protocol: string; denied: number; limited: number }>();

  constructor(private readonly maxServices = 2000) {}

  tcpOpened(service: string): void {
    this.#tcpOf(service).open++;
  }

  /** `result`: 'relayed' or why nothing was (tcp-service-set's refused); `wasOpen`: tcpOpened was called for it */
  tcpEnded(service: string, result: string, bytesIn: number, bytesOut: number, durationMs: number, connectErrors: number, wasOpen: boolean): void {
    const t = this.#tcpOf(service === '' ? UNKNOWN_SERVICE : service);
    t.dirty = true;
    if (wasOpen && t.open > 0) t.open--;
    t.results.set(result, (t.results.get(result) ?? 0) + 1);
    t.bytesIn += bytesIn;
    t.bytesOut += bytesOut;
    t.connectErrors += connectErrors;
    const seconds = durationMs / 1000;
    t.durationSum += seconds;
    let b = 0;
    while (b < TCP_DURATION_BUCKETS_SECONDS.length && seconds > TCP_DURATION_BUCKETS_SECONDS[b]) b++;
    t.buckets[b]++;
  }

  refused(service: string, protocol: string, kind: RefusalKind): void {
    const key = `${service}\u0000${protocol}`;
    let r = this.#refused.get(key);
    if (r === undefined) {
      if (this.#refused.size >= this.maxServices) return this.refused(OTHER, protocol, kind);
      this.#refused.set(key, (r = { service, protocol, denied: 0, limited: 0 }));
    }
    r[kind]++;
  }

  /** [service, TCP connections open now] (a gauge) */
  openTcp(): [string, number][] {
    const out: [string, number][] = [];
    for (const [name, t] of this.#tcp) if (t.open > 0 || t.dirty) out.push([name, t.open]);
    return out;
  }

  takeDelta(): { tcp?: TcpDelta[]; refused?: RefusedDelta[] } {
    const tcp: TcpDelta[] = [];
    for (const [name, t] of this.#tcp) {
      if (!t.dirty) continue;
      tcp.push({ name, results: [...t.results], bytesIn: t.bytesIn, bytesOut: t.bytesOut, connectErrors: t.connectErrors, durationSum: t.durationSum, buckets: Array.from(t.buckets) });
      t.results.clear();
      t.bytesIn = 0; t.bytesOut = 0; t.connectErrors = 0; t.durationSum = 0; t.buckets.fill(0); t.dirty = false;
      if (t.open === 0) this.#tcp.delete(name);
    }
    const refused: RefusedDelta[] = [];
    for (const r of this.#refused.values()) if (r.denied > 0 || r.limited > 0) refused.push([r.service, r.protocol, r.denied, r.limited]);
    this.#refused.clear();
    return { ...(tcp.length > 0 ? { tcp } : {}), ...(refused.length > 0 ? { refused } : {}) };
  }

  #tcpOf(service: string): TcpFigures {
    let t = this.#tcp.get(service);
    if (t === undefined) {
      if (this.#tcp.size >= this.maxServices) service = OTHER;
      t = this.#tcp.get(service) ?? new TcpFigures();
      this.#tcp.set(service, t);
    }
    return t;
  }
}
