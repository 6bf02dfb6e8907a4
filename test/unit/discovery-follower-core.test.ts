// The index-design follower's core (follower-core.ts) driven alone, without HTTP, timers or a clock:
// one row per case that matters on a real Consul. The catalog is the Consul double's state store
// (test/support/consul-double/state.ts, which keeps the index table as agent/consul/state/catalog.go
// does: one index for a node leave, service.<name> indexes, service_last_extinction, txn at one index),
// and the answers are built from it with the double's views, as its router builds them. The harness
// answers every read the core asks for, fires the timers it sets by moving a virtual clock, and emits
// when the core says so; each row then checks the emitted table against the catalog, and what was read.
// The rule under test: when in doubt, read, never assume.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FollowerCore, type CoreTimer, type FollowerCommand, type FollowerEvent } from '../../balancer/src/discovery/follower-core.js';
import { VERIFY_REASON } from '../../balancer/src/discovery/explain-step.js';
import { parseHealthAnswer } from '../../balancer/src/discovery/health-entries.js';
import { ConsulState, type CatalogCheck } from '../support/consul-double/state.js';
import type { ServiceDef } from '../support/consul-double/registration.js';
import { checkView, healthServiceView, nodeView } from '../support/consul-double/views.js';

const SUMMARY = '(summary)';
/** a sweep's probe of a service (the reads list names it so) */
const PROBE = 'probe:';
type Signal = 'catalog' | 'checks' | 'nodes';

function serviceDef(id: string, name: string, port: number, address = ''): ServiceDef {
  return { id, name, tags: [], address, port, meta: {}, weights: { Passing: 1, Warning: 1 }, enableTagOverride: false, taggedAddresses: {} };
}

function check(serviceId: string, status: 'passing' | 'warning' | 'critical'): CatalogCheck {
  return { checkId: `service:${serviceId}`, name: 'http', status, output: '', notes: '', serviceId, definition: {} };
}

/** The catalog and a follower following it, every answer built from the state at the moment it is read. */
class Follow {
  readonly state: ConsulState;
  readonly core = new FollowerCore({ startGraceMs: 5_000 });
  now = 1_000;
  /** the index each signal last answered with (0: its next answer is a first one) */
  readonly answered: Record<Signal, number> = { catalog: 0, checks: 0, nodes: 0 };
  /** signals held back (a polled signal, one not answered yet) */
  readonly held = new Set<Signal>();
  /** reads asked for and not answered yet, in order */
  readonly inFlight: string[] = [];
  /** every read the core asked for, in order */
  readonly reads: string[] = [];
  readonly timers = new Map<CoreTimer, number>();
  readonly retries = new Map<string, number>();
  readonly commands: FollowerCommand[] = [];
  /** Consul unreachable: every request fails */
  down = false;
  /** the summary endpoint answers this status (404: an agent without it) */
  summaryStatus: number | undefined;
  /** the probe's filter is refused (400: an agent without the filter language) */
  probeRefused = false;
  /** the checks filter is refused: critical and warning are followed apart (the shell merges them) */
  checksFilterRefused = false;
  #emitOpen = false;
  #changed = new Set<string>();
  table: Map<string, string[]> | undefined;
  emits = 0;

  constructor(setup: (state: ConsulState) => void) {
    this.state = new ConsulState({ nodeName: 'consul', nodeAddress: '127.0.0.1', datacenter: 'dc1', nodeId: 'consul-id' }, () => this.now);
    setup(this.state);
  }

  feed(event: FollowerEvent): void {
    const commands = this.core.step(event, { now: this.now, freeReadSlots: Math.max(0, 8 - this.inFlight.length), readLimit: 8, pauseLeftMs: 0 });
    for (const c of commands) {
      this.commands.push(c);
      switch (c.kind) {
        case 'read':
          this.inFlight.push(c.service);
          this.reads.push(c.service);
          break;
        case 'probe':
          this.inFlight.push(`${PROBE}${c.service}`);
          this.reads.push(`${PROBE}${c.service}`);
          break;
        case 'read-summary':
          this.inFlight.push(SUMMARY);
          this.reads.push(SUMMARY);
          break;
        case 'set-timer':
          this.timers.set(c.timer, this.now + ('ms' in c ? c.ms : 100 * 2 ** c.backoffAttempt));
          break;
        case 'clear-timer':
          this.timers.delete(c.timer);
          break;
        case 'retry-read':
          this.retries.set(c.service, this.now + 100 * 2 ** Math.min(c.attempt, 5));
          break;
        case 'cancel-retry':
          this.retries.delete(c.service);
          break;
        case 'changed':
          this.#changed.add(c.service);
          break;
        case 'emit-soon':
          this.#emitOpen = true;
          break;
        case 'warning':
        case 'log':
          break;
      }
    }
  }

  // ---- the answers, as the double's router builds them ----

  signalIndex(s: Signal): number {
    return s === 'catalog' ? this.state.indexForCatalogServices() : s === 'checks' ? this.state.indexForChecks() : this.state.indexForNodes();
  }

  signalBody(s: Signal): unknown {
    if (s === 'catalog') {
      const out: Record<string, string[]> = {};
      for (const e of this.state.services.values()) out[e.def.name] = [...new Set([...(out[e.def.name] ?? []), ...e.def.tags])];
      return out;
    }
    if (s === 'checks') return [...this.state.checks.values()].filter((c) => c.status !== 'passing').map((c) => checkView(c));
    return [...this.state.nodes.values()].map((n) => nodeView(n));
  }

  healthBody(name: string): unknown[] {
    return this.state.instancesNamed(name).map((s) => ({ Node: nodeView(this.state.nodes.get(s.node)!), Service: healthServiceView(s), Checks: this.state.checksOfInstance(s).map((c) => checkView(c)) }));
  }

  summaryBody(): unknown {
    const rows = new Map<string, { count: number; nodes: string[] }>();
    for (const e of this.state.services.values()) {
      const r = rows.get(e.def.name) ?? { count: 0, nodes: [] };
      r.count++;
      r.nodes.push(e.node);
      rows.set(e.def.name, r);
    }
    return [...rows].map(([Name, r]) => ({ Name, InstanceCount: r.count, Nodes: r.nodes.sort() }));
  }

  /** A blocking signal answers when its index moved past what it answered last. */
  #wake(): boolean {
    if (this.down) return false;
    for (const s of ['catalog', 'checks', 'nodes'] as const) {
      if (this.held.has(s)) continue;
      const index = this.signalIndex(s);
      if (index <= this.answered[s]) continue;
      const first = this.answered[s] === 0;
      this.answered[s] = index;
      if (s === 'checks' && first && this.checksFilterRefused && !this.core.stats().checksFilterRefused) this.feed({ kind: 'checks-filter-refused' });
      const body = this.signalBody(s);
      this.feed(s === 'catalog' ? { kind: 'catalog', index, body, first, text: JSON.stringify(body) } : { kind: s, index, body, first });
      return true;
    }
    return false;
  }

  #answerOne(): boolean {
    const what = this.inFlight.shift();
    if (what === undefined) return false;
    if (what === SUMMARY) {
      if (this.down) this.feed({ kind: 'summary-failed', message: 'connect ECONNREFUSED' });
      else if (this.summaryStatus !== undefined) this.feed({ kind: 'summary-failed', message: `${this.summaryStatus}`, status: this.summaryStatus });
      else this.feed({ kind: 'summary-answered', index: this.state.indexForCatalog(), body: this.summaryBody() });
    } else if (what.startsWith(PROBE)) {
      const service = what.slice(PROBE.length);
      if (this.down || this.probeRefused) this.feed({ kind: 'probe-failed', service, message: this.down ? 'connect ECONNREFUSED' : '400', ...(this.down ? {} : { status: 400 }) });
      else this.feed({ kind: 'probe-answered', service, index: this.state.indexForServiceName(service, true) });
    } else if (this.down) this.feed({ kind: 'read-failed', service: what, message: 'connect ECONNREFUSED', code: 'ERR_CONSUL_REQUEST' });
    else this.feed({ kind: 'read-answered', service: what, index: this.state.indexForServiceName(what, true), body: this.healthBody(what), bytes: 100 });
    return true;
  }

  #fireTimer(horizon: number): boolean {
    let next: { at: number; fire: () => void } | undefined;
    for (const [timer, at] of this.timers) if (!next || at < next.at) next = { at, fire: () => (this.timers.delete(timer), this.feed({ kind: 'timer', timer })) };
    for (const [service, at] of this.retries) if (!next || at < next.at) next = { at, fire: () => (this.retries.delete(service), this.feed({ kind: 'retry-due', service })) };
    if (!next || next.at > horizon) return false;
    this.now = Math.max(this.now, next.at);
    next.fire();
    return true;
  }

  #emit(): boolean {
    if (!this.#emitOpen) return false;
    this.#emitOpen = false;
    if (!this.core.complete(this.now) || (this.table !== undefined && this.#changed.size === 0)) return true;
    this.table = new Map([...this.core.entries].map(([name, e]) => [name, e.instances.map((i) => `${i.serviceId}@${i.address}:${i.port} ${i.status}`)]));
    this.#changed.clear();
    this.emits++;
    this.feed({ kind: 'emitted' });
    return true;
  }

  /** The signals whose index moved answer; the reads they lead to stay unanswered. */
  signalsAnswer(): this {
    while (this.#wake());
    return this;
  }

  /** Signals first, then reads in order, then the emit window, then the earliest timer within `forMs`. */
  settle(forMs = 60_000): this {
    const horizon = this.now + forMs;
    for (let i = 0; i < 100_000; i++) {
      if (this.#wake() || this.#answerOne() || this.#emit() || this.#fireTimer(horizon)) continue;
      return this;
    }
    throw new Error('the follower did not settle in 100,000 steps');
  }

  /** What the follower must show: every service of the catalog (but consul) with its instances. */
  expected(): Map<string, string[]> {
    const names = new Set([...this.state.services.values()].map((e) => e.def.name).filter((n) => n !== 'consul'));
    return new Map([...names].sort().map((name) => [name, parseHealthAnswer(name, this.healthBody(name)).instances.map((i) => `${i.serviceId}@${i.address}:${i.port} ${i.status}`)]));
  }

  /** Runs `change` and settles; answers the reads the change led to. */
  change(change: (state: ConsulState) => void, forMs?: number): string[] {
    const from = this.reads.length;
    change(this.state);
    this.settle(forMs);
    return this.reads.slice(from);
  }

  outage(): void {
    this.down = true;
    // each signal loop's first failure in a row; its next answer is a new baseline
    this.feed({ kind: 'signal-failed', signal: 'checks' });
    this.feed({ kind: 'signal-failed', signal: 'nodes' });
    for (const s of ['catalog', 'checks', 'nodes'] as const) this.answered[s] = 0;
  }
}

const sorted = (m: Map<string, string[]> | undefined) => (m ? new Map([...m].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, [...v].sort()])) : undefined);
const assertFollows = (f: Follow, why: string) => assert.deepEqual(sorted(f.table), sorted(f.expected()), why);

/** n1 and n2 (serf members), `services` services with one instance on each (node addresses, no checks). */
function twoNodes(services: number): (state: ConsulState) => void {
  return (state) => {
    state.nodeJoin({ name: 'n1', address: '127.0.1.1' });
    state.nodeJoin({ name: 'n2', address: '127.0.1.2' });
    for (let i = 0; i < services; i++) {
      for (const node of ['n1', 'n2']) state.catalogRegister({ node: { name: node, address: node === 'n1' ? '127.0.1.1' : '127.0.1.2' }, skipNodeUpdate: true, service: serviceDef(`s${i}-${node}`, `s${i}`, 20_000 + i), checks: [] });
    }
  };
}

function started(setup: (state: ConsulState) => void, tune?: (f: Follow) => void): Follow {
  const f = new Follow(setup);
  tune?.(f);
  f.settle();
  assertFollows(f, 'the first snapshot is the catalog');
  return f;
}

describe('follower core: the cases that matter on a real Consul', () => {
  it('starts: the signals set a baseline, then every service is read once, then one snapshot', () => {
    const f = started(twoNodes(5));
    assert.deepEqual([...f.reads].sort(), ['s0', 's1', 's2', 's3', 's4']);
    assert.equal(f.emits, 1);
    assert.equal(f.core.settled(), true);
  });

  it('node leave: one index removes instances of many services, each leaves the table', () => {
    const f = started(twoNodes(6));
    const reads = f.change((s) => s.nodeLeave('n2'));
    assertFollows(f, 'no instance on n2 is left');
    for (let i = 0; i < 6; i++) assert.ok(reads.includes(`s${i}`), `s${i} re-read`);
  });

  it('node leave with the nodes signal not answering: the leave index is named only as reads\' own index, the summary finds every service', () => {
    const f = started(twoNodes(6));
    f.held.add('nodes'); // a polled nodes signal (small budget) that has not come round yet
    const reads = f.change((s) => s.nodeLeave('n2'));
    assertFollows(f, 'no instance on n2 is left');
    assert.ok(reads.includes(SUMMARY), 'the summary was read: one deletion index may cover many services');
    for (let i = 0; i < 6; i++) assert.ok(reads.includes(`s${i}`), `s${i} re-read`);
    assert.ok(f.core.stats().deletionsCounted >= 1);
  });

  it('index noise: KV and coordinate writes move the index, wake no signal and cost no read', () => {
    const f = started(twoNodes(4));
    const reads = f.change((s) => {
      for (let i = 0; i < 20; i++) s.kvPut(`registrator/instances/e${i}`, Buffer.from('x'), 0, undefined);
      s.coordinateBatch([{ node: 'n1', coord: { Vec: [i0()] } }]);
    });
    assert.deepEqual(reads, []);
    assertFollows(f, 'nothing changed');
  });

  it('index noise inside a catalog answer: the gap is read, never taken for noise', () => {
    const f = started(twoNodes(4));
    f.held.add('nodes');
    const reads = f.change((s) => {
      for (let i = 0; i < 5; i++) s.kvPut(`k${i}`, Buffer.from('x'), 0, undefined);
      // a count-preserving services write no check names, then a registration a read will name
      s.catalogRegister({ node: { name: 'n1', address: '127.0.1.1' }, skipNodeUpdate: true, service: serviceDef('s0-n1', 's0', 21_000), checks: [] });
      for (let i = 5; i < 10; i++) s.kvPut(`k${i}`, Buffer.from('x'), 0, undefined);
      s.catalogRegister({ node: { name: 'n1', address: '127.0.1.1' }, skipNodeUpdate: true, service: serviceDef('s1-n1b', 's1', 21_001), checks: [] });
    });
    assertFollows(f, 's0 moved to 21000 and s1 has its new instance');
    assert.ok(reads.includes('s0'), 's0 re-read although no signal named it');
    // the gap's rescan asks each service for its index: s0's moved (read in full), s2's and s3's did not
    for (const s of ['s2', 's3']) assert.ok(reads.includes(`${PROBE}${s}`) !== reads.includes(s), `${s} probed or read (the guess), not both: ${reads.join(' ')}`);
    assert.ok(reads.some((r) => r.startsWith(PROBE)), 'the rescan probed');
    assert.ok((f.core.stats().rescanReasons['write no read names inside a catalog answer'] ?? 0) >= 1);
  });

  it('a read names an index that is not its own: a gone service answers the extinction index, the node leave below it is still found', () => {
    const f = started((state) => {
      twoNodes(1)(state); // s0 on n1 and n2
      state.catalogRegister({ node: { name: 'n2', address: '127.0.1.2' }, skipNodeUpdate: true, service: serviceDef('a-n2', 'a', 22_000), checks: [] });
      state.catalogRegister({ node: { name: 'n1', address: '127.0.1.1' }, skipNodeUpdate: true, service: serviceDef('b-n1', 'b', 22_001), checks: [] });
    });
    f.held.add('nodes');
    const reads = f.change((s) => {
      s.nodeLeave('n2'); // a's only instance and s0's n2 instance, one index
      s.catalogDeregister({ node: 'n1', serviceId: 'b-n1' }); // b's last instance: service_last_extinction moves past the leave
    });
    assertFollows(f, 'a and b gone, s0 only on n1');
    assert.ok(reads.includes('a') && reads.includes('b'), 'the gone names were read for the index they name');
    assert.ok(reads.includes(SUMMARY), 'their (extinction) index does not explain the leave below it: the summary was read');
    assert.ok(reads.includes('s0'));
  });

  it('a /v1/txn writes two services at one index: the one no read names is swept', () => {
    const f = started(twoNodes(3));
    const reads = f.change((s) => {
      const { errors } = s.txnServices([
        { verb: 'set', node: 'n1', service: serviceDef('s0-n1', 's0', 23_000) }, // a port move: no count, no check, no name changes
        { verb: 'set', node: 'n2', service: serviceDef('s1-n2b', 's1', 23_001) }, // an instance added: the summary names s1
      ]);
      assert.deepEqual(errors, []);
    });
    assertFollows(f, 's0 on its new port, s1 with its new instance');
    assert.ok(reads.includes(`${PROBE}s0`) && reads.includes('s0'), 'the sweep probed s0, found its index moved and read it in full');
    assert.ok((f.core.stats().rescanReasons[VERIFY_REASON] ?? 0) >= 1, 'the sweep behind the explained window read it');
  });

  it('the sweep probes: a quiet service costs its index only, one whose index moved is read in full', () => {
    const f = started(twoNodes(6));
    const reads = f.change((s) => s.catalogRegister({ node: { name: 'n1', address: '127.0.1.1' }, skipNodeUpdate: true, service: serviceDef('s0-n1b', 's0', 26_000), checks: [check('s0-n1b', 'passing')] }));
    assertFollows(f, 's0 has its new instance');
    const probed = reads.filter((r) => r.startsWith(PROBE)).map((r) => r.slice(PROBE.length)).sort();
    const full = reads.filter((r) => !r.startsWith(PROBE) && r !== SUMMARY);
    // s0 read (the checks signal named it), s5 maybe (the guess: the service that changed last)
    for (let i = 0; i < 6; i++) assert.ok(probed.includes(`s${i}`) !== full.includes(`s${i}`), `s${i}: probed or read in full, not both`);
    for (const s of ['s1', 's2', 's3', 's4']) assert.ok(probed.includes(s), `${s} probed, not read`);
    assert.equal(f.core.stats().sweepProbesChanged, 0);
  });

  it('the sweep probe refused (400): the sweep reads in full, said once', () => {
    const f = started(twoNodes(3), (g) => (g.probeRefused = true));
    const reads = f.change((s) => s.catalogRegister({ node: { name: 'n1', address: '127.0.1.1' }, skipNodeUpdate: true, service: serviceDef('s0-n1b', 's0', 26_000), checks: [check('s0-n1b', 'passing')] }));
    assertFollows(f, 's0 has its new instance');
    assert.equal(f.core.stats().sweepProbesUsable, false);
    assert.equal(reads.filter((r) => r.startsWith(PROBE)).length, 1, 'one probe refused, then none');
    for (const s of ['s1', 's2']) assert.ok(reads.includes(s), `${s} read in full`);
    assert.equal(f.commands.filter((c) => c.kind === 'log' && c.msg.includes('sweep probe filter')).length, 1);
  });

  it('node failure and recovery: the node check names the node, every service on it is read', () => {
    const f = started(twoNodes(4));
    let reads = f.change((s) => assert.ok(s.nodeFail('n2')));
    assertFollows(f, 'every n2 instance critical');
    assert.ok(f.table?.get('s3')?.includes('s3-n2@127.0.1.2:20003 critical'));
    for (let i = 0; i < 4; i++) assert.ok(reads.includes(`s${i}`), `s${i} read after the failure`);
    reads = f.change((s) => assert.ok(s.nodeRecover('n2')));
    assertFollows(f, 'passing again');
    for (let i = 0; i < 4; i++) assert.ok(reads.includes(`s${i}`), `s${i} read after the recovery`);
  });

  it('a burst inside one blocking answer: registrations, a deregistration, a last instance gone and noise, all shown', () => {
    const f = started(twoNodes(5));
    f.change((s) => {
      for (let i = 0; i < 3; i++) s.catalogRegister({ node: { name: 'n1', address: '127.0.1.1' }, skipNodeUpdate: true, service: serviceDef(`s${i}-n1-b`, `s${i}`, 27_000 + i), checks: [] });
      s.kvPut('registrator/instances/e', Buffer.from('x'), 0, undefined);
      s.catalogDeregister({ node: 'n2', serviceId: 's3-n2' });
      s.catalogDeregister({ node: 'n1', serviceId: 's4-n1' });
      s.catalogDeregister({ node: 'n2', serviceId: 's4-n2' }); // s4's last instance: the name goes
      s.catalogRegister({ node: { name: 'n2', address: '127.0.1.2' }, skipNodeUpdate: true, service: serviceDef('web-n2', 'web', 27_100), checks: [check('web-n2', 'warning')] });
    });
    assertFollows(f, 'every write of the burst shows');
    assert.equal(f.table?.has('s4'), false);
    assert.deepEqual(f.table?.get('web'), ['web-n2@127.0.1.2:27100 warning']);
  });

  it('node re-address: only the nodes signal wakes, every instance without its own address moves', () => {
    const f = started(twoNodes(3));
    const reads = f.change((s) => s.catalogRegister({ node: { name: 'n2', address: '127.0.9.2' }, checks: [] }));
    assertFollows(f, 'the n2 instances now at 127.0.9.2');
    assert.deepEqual(f.table?.get('s2')?.filter((i) => i.includes('127.0.9.2')), ['s2-n2@127.0.9.2:20002 passing']);
    assert.ok(!reads.includes(SUMMARY), 'the nodes signal named them: no summary');
  });

  it('a count-preserving move inside one answer: one instance out, another in, the new one shows', () => {
    const f = started(twoNodes(4));
    f.held.add('nodes');
    f.change((s) => {
      s.catalogDeregister({ node: 'n1', serviceId: 's2-n1' });
      s.catalogRegister({ node: { name: 'n1', address: '127.0.1.1' }, skipNodeUpdate: true, service: serviceDef('s2-n1-new', 's2', 24_000), checks: [] });
    });
    assertFollows(f, 's2-n1 gone, s2-n1-new there, count unchanged');
  });

  it('the checks filter refused (400): the fallback rows still drive reads, and it is counted once', () => {
    const f = started(twoNodes(2), (g) => (g.checksFilterRefused = true));
    assert.equal(f.core.stats().checksFilterRefused, true);
    assert.equal(f.core.stats().signalFallbacks, 1);
    f.change((s) => s.catalogRegister({ node: { name: 'n1', address: '127.0.1.1' }, skipNodeUpdate: true, service: serviceDef('s1-n1', 's1', 20_001), checks: [check('s1-n1', 'critical')] }));
    assertFollows(f, 's1-n1 critical');
    assert.ok(f.table?.get('s1')?.includes('s1-n1@127.0.1.1:20001 critical'));
    const reads = f.change((s) => s.catalogRegister({ node: { name: 'n1', address: '127.0.1.1' }, skipNodeUpdate: true, service: serviceDef('s1-n1', 's1', 20_001), checks: [check('s1-n1', 'passing')] }));
    assertFollows(f, 's1-n1 passing again');
    assert.ok(reads.includes('s1'));
  });

  it('the summary refused (404): an unexplained move falls back to a rescan, and it still follows', () => {
    const f = started(twoNodes(3), (g) => (g.summaryStatus = 404));
    f.held.add('nodes');
    const reads = f.change((s) => s.nodeLeave('n2'));
    assertFollows(f, 'no instance on n2 is left');
    assert.equal(f.core.stats().summaryUsable, false);
    for (let i = 0; i < 3; i++) assert.ok(reads.includes(`s${i}`));
  });

  it('Consul down then back: reads fail, the last good table is kept and retried; after it, a restart rescan catches up', () => {
    const f = started(twoNodes(3));
    const before = sorted(f.table);
    // a change whose reads fail: the agent goes away before it answers them
    f.state.catalogDeregister({ node: 'n1', serviceId: 's1-n1' });
    f.held.add('nodes');
    f.signalsAnswer(); // the reads are asked for...
    assert.ok(f.inFlight.length > 0);
    f.outage(); // ...and fail
    f.state.catalogRegister({ node: { name: 'n1', address: '127.0.1.1' }, skipNodeUpdate: true, service: serviceDef('s2-n1b', 's2', 25_000), checks: [] });
    f.settle(2_000);
    assert.deepEqual(sorted(f.table), before, 'the last good table is kept while Consul is down');
    assert.ok(f.commands.some((c) => c.kind === 'retry-read'), 'a failed read is retried after a backoff');
    f.down = false;
    f.held.delete('nodes');
    f.settle();
    assertFollows(f, 'back: every change made while it was down shows');
    // after a lost connection the agent may have a new index space: that rescan reads in full
    assert.equal(f.reads.slice(-3).some((r) => r.startsWith(PROBE)), false);
    assert.ok((f.core.stats().rescanReasons['catalog watcher restarted'] ?? 0) >= 1);
  });
});

/** a coordinate value (its content does not matter to the follower) */
function i0(): number {
  return 0.25;
}
