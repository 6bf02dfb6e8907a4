// Timers that make checks behave like an agent's (agent/agent.go, agent/checks/, agent/local/state.go):
// TTL expiry, the critical-service reaper with its floors, output-only results reaching the catalog up
// to check_update_interval later, and (when runChecks is on) HTTP/TCP probes at their Interval.
// Builtins only.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { CheckDef, CheckStatus } from './registration.js';
import type { ConsulState } from './state.js';

const DEFAULT_CHECK_TIMEOUT_MS = 10_000;
/** TTL timers and probes of new checks start at most this late */
const RECONCILE_COALESCE_MS = 20;
const MAX_OUTPUT = 4096;

export interface CheckRunnerOptions {
  runChecks: boolean;
  /** agent.go: CheckReapInterval, 30 s on a real agent */
  reapIntervalMs: number;
  /** agent.go addCheck: DeregisterCriticalServiceAfter below CheckDeregisterIntervalMin (1 min) is raised to it */
  deregisterCriticalMinMs: number;
  /**
   * check_update_interval (5 min): a result that changes only the output is the agent's at once and the
   * catalog's after a random stagger up to this (agent/local/state.go UpdateCheck); 0 syncs at once
   */
  checkUpdateIntervalMs: number;
  random: () => number;
}

interface Probe {
  readonly def: CheckDef;
  timer?: NodeJS.Timeout;
  inFlight?: AbortController;
}

export class CheckRunner {
  private readonly ttlTimers = new Map<string, { def: CheckDef; timer: NodeJS.Timeout }>();
  private readonly probes = new Map<string, Probe>();
  /** check ID -> the deferred catalog sync of its output */
  private readonly deferred = new Map<string, NodeJS.Timeout>();
  private reaper?: NodeJS.Timeout;
  // a reconcile walks every check: once per burst of writes, not once per write (50,000 registrations
  // one by one were quadratic and starved the double's event loop)
  private reconcileTimer?: NodeJS.Timeout;
  private readonly onChange = () => {
    if (this.reconcileTimer || this.closed) return;
    this.reconcileTimer = setTimeout(() => {
      this.reconcileTimer = undefined;
      this.reconcile();
    }, RECONCILE_COALESCE_MS);
    this.reconcileTimer.unref();
  };
  private closed = false;

  constructor(
    private readonly state: ConsulState,
    private readonly opts: CheckRunnerOptions,
  ) {
    state.changes.on('change', this.onChange);
    this.reaper = setInterval(() => this.reap(), opts.reapIntervalMs);
    this.reaper.unref();
    this.reconcile();
  }

  /**
   * A check's new result, as the agent's local state takes it: a status change is synced at once (and
   * cancels a deferred output); an output-only change waits for its stagger.
   */
  checkResult(checkId: string, status: CheckStatus, output: string): void {
    const defer = this.opts.checkUpdateIntervalMs > 0;
    const r = this.state.updateCheck(checkId, status, output, defer);
    if (r !== 'deferred') {
      const c = this.state.agentCheck(checkId);
      if (c && c.output === c.agentOutput) this.cancelDeferred(checkId);
      return;
    }
    if (this.deferred.has(checkId) || this.closed) return;
    const t = setTimeout(() => {
      this.deferred.delete(checkId);
      this.state.flushOutput(checkId);
    }, Math.floor(this.opts.random() * this.opts.checkUpdateIntervalMs));
    t.unref();
    this.deferred.set(checkId, t);
  }

  private cancelDeferred(checkId: string): void {
    const t = this.deferred.get(checkId);
    if (t) clearTimeout(t);
    this.deferred.delete(checkId);
  }

  /** An agent check/pass|warn|fail|update call arrived: the TTL starts over. */
  ttlRefreshed(checkId: string): void {
    const t = this.ttlTimers.get(checkId);
    if (!t) return;
    clearTimeout(t.timer);
    t.timer = this.armTtl(t.def);
  }

  close(): void {
    this.closed = true;
    this.state.changes.off('change', this.onChange);
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    if (this.reaper) clearInterval(this.reaper);
    for (const t of this.deferred.values()) clearTimeout(t);
    this.deferred.clear();
    for (const t of this.ttlTimers.values()) clearTimeout(t.timer);
    this.ttlTimers.clear();
    for (const p of this.probes.values()) this.stopProbe(p);
    this.probes.clear();
  }

  /** Start timers for new check definitions and drop those of removed or replaced ones. */
  private reconcile(): void {
    if (this.closed) return;
    for (const [id, t] of this.ttlTimers) {
      if (this.state.agentCheck(id)?.def !== t.def) {
        clearTimeout(t.timer);
        this.ttlTimers.delete(id);
      }
    }
    for (const [id, p] of this.probes) {
      if (this.state.agentCheck(id)?.def !== p.def) {
        this.stopProbe(p);
        this.probes.delete(id);
      }
    }
    for (const c of this.state.agentChecksUnordered()) {
      const def = c.def;
      const id = def.checkId;
      if (def.type === 'ttl' && def.ttlMs && !this.ttlTimers.has(id)) {
        this.ttlTimers.set(id, { def, timer: this.armTtl(def) });
      }
      if (this.opts.runChecks && (def.type === 'http' || def.type === 'tcp') && !this.probes.has(id)) {
        const probe: Probe = { def };
        this.probes.set(id, probe);
        // A real agent staggers the first run randomly within the interval; the double runs it at once.
        this.schedule(probe, 0);
      }
    }
  }

  private armTtl(def: CheckDef): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const c = this.state.agentCheck(def.checkId);
      if (!c || c.def !== def) return;
      this.checkResult(def.checkId, 'critical', `TTL expired (last output before timeout follows): ${c.agentOutput}`);
    }, def.ttlMs);
    timer.unref();
    return timer;
  }

  private reap(): void {
    const now = Date.now();
    const doomed = new Set<string>();
    for (const c of this.state.agentChecksUnordered()) {
      const given = c.def.deregisterCriticalAfterMs;
      if (!c.def.serviceId || given === undefined || given <= 0) continue;
      const after = Math.max(given, this.opts.deregisterCriticalMinMs);
      if (c.status === 'critical' && c.criticalSince !== undefined && now - c.criticalSince >= after) doomed.add(c.def.serviceId);
    }
    for (const id of doomed) this.state.deregister(id);
  }

  private schedule(probe: Probe, delayMs: number): void {
    probe.timer = setTimeout(() => {
      void this.runProbe(probe).finally(() => {
        if (!this.closed && this.probes.get(probe.def.checkId) === probe) this.schedule(probe, probe.def.intervalMs ?? 10_000);
      });
    }, delayMs);
    probe.timer.unref();
  }

  private stopProbe(p: Probe): void {
    if (p.timer) clearTimeout(p.timer);
    p.inFlight?.abort();
  }

  private async runProbe(probe: Probe): Promise<void> {
    const def = probe.def;
    const ac = new AbortController();
    probe.inFlight = ac;
    const timeoutMs = def.timeoutMs && def.timeoutMs > 0 ? def.timeoutMs : DEFAULT_CHECK_TIMEOUT_MS;
    const result = def.type === 'http' ? await httpProbe(def, timeoutMs, ac.signal) : await tcpProbe(def.tcp ?? '', timeoutMs, ac.signal);
    probe.inFlight = undefined;
    if (ac.signal.aborted || this.closed) return;
    const current = this.state.agentCheck(def.checkId);
    if (current?.def === def) this.checkResult(def.checkId, result.status, result.output);
  }
}

interface ProbeResult {
  status: CheckStatus;
  output: string;
}

function httpProbe(def: CheckDef, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  const url = def.http ?? '';
  const method = def.method || 'GET';
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult) => {
      if (!done) {
        done = true;
        resolve(r);
      }
    };
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      finish({ status: 'critical', output: `invalid URL ${url}` });
      return;
    }
    const headers: Record<string, string | string[]> = { 'User-Agent': 'Consul Health Check', Accept: 'text/plain, text/*, */*' };
    for (const [k, v] of Object.entries(def.header ?? {})) headers[k] = [...v];
    const mod = target.protocol === 'https:' ? https : http;
    const req = mod.request(target, { method, headers, signal, timeout: timeoutMs, rejectUnauthorized: !def.tlsSkipVerify }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size < MAX_OUTPUT) chunks.push(c);
        size += c.length;
      });
      res.on('error', () => undefined);
      res.on('end', () => {
        const code = res.statusCode ?? 0;
        const body = Buffer.concat(chunks).subarray(0, MAX_OUTPUT).toString('utf8');
        const output = `HTTP ${method} ${url}: ${code} ${res.statusMessage ?? ''} Output: ${body}`;
        const status: CheckStatus = code >= 200 && code < 300 ? 'passing' : code === 429 ? 'warning' : 'critical';
        finish({ status, output });
      });
    });
    req.on('timeout', () => {
      req.destroy();
      finish({ status: 'critical', output: `Get "${url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)` });
    });
    req.on('error', (err) => finish({ status: 'critical', output: `Get "${url}": ${err.message}` }));
    if (def.body) req.write(def.body);
    req.end();
  });
}

function tcpProbe(addr: string, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const i = addr.lastIndexOf(':');
    const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(addr.slice(i + 1));
    if (i < 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
      resolve({ status: 'critical', output: `dial tcp ${addr}: address ${addr}: missing port in address` });
      return;
    }
    const socket = net.connect({ host, port, timeout: timeoutMs, signal });
    let done = false;
    const finish = (r: ProbeResult) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(r);
    };
    socket.on('connect', () => finish({ status: 'passing', output: `TCP connect ${addr}: Success` }));
    socket.on('timeout', () => finish({ status: 'critical', output: `dial tcp ${addr}: i/o timeout` }));
    socket.on('error', (err) => finish({ status: 'critical', output: `dial tcp ${addr}: ${err.message}` }));
  });
}
