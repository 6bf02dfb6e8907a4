// Health state machines: nginx passive ejection and recovery, rise/fall, and PeerHealth across tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassiveHealth } from '../../balancer/src/health/passive.js';
import { RiseFall } from '../../balancer/src/health/rise-fall.js';
import { PeerHealth } from '../../balancer/src/health/peer-health.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { ActiveCheckSpec, ServerSpec, UpstreamSpec } from '../../balancer/src/routing/types.js';

type Step =
  | { at: number; fail: true }
  | { at: number; ok: true }
  | { at: number; attempt: true }
  | { at: number; ejected: boolean };

function runPassive(maxFails: number, failTimeoutMs: number, steps: Step[], label: string): void {
  const p = new PassiveHealth(maxFails, failTimeoutMs);
  for (const s of steps) {
    if ('fail' in s) p.recordFailure(s.at);
    else if ('ok' in s) p.recordSuccess(s.at);
    else if ('attempt' in s) p.noteAttempt(s.at);
    else assert.equal(p.isEjected(s.at), s.ejected, `${label}: isEjected at ${s.at}`);
  }
}

test('passive health: nginx max_fails/fail_timeout scenarios', () => {
  const scenarios: { label: string; maxFails: number; failTimeoutMs: number; steps: Step[] }[] = [
    {
      label: 'one failure ejects with max_fails=1, for fail_timeout',
      maxFails: 1, failTimeoutMs: 10_000,
      steps: [{ at: 0, ejected: false }, { at: 100, fail: true }, { at: 101, ejected: true }, { at: 10_099, ejected: true }, { at: 10_100, ejected: false }],
    },
    {
      label: 'max_fails=3 needs 3 failures inside the window',
      maxFails: 3, failTimeoutMs: 1000,
      steps: [{ at: 0, fail: true }, { at: 500, fail: true }, { at: 600, ejected: false }, { at: 900, fail: true }, { at: 901, ejected: true }, { at: 1899, ejected: true }, { at: 1900, ejected: false }],
    },
    {
      label: 'failures spread over more than the window do not eject',
      maxFails: 2, failTimeoutMs: 1000,
      steps: [{ at: 0, fail: true }, { at: 1500, fail: true }, { at: 1501, ejected: false }, { at: 1600, fail: true }, { at: 1601, ejected: true }],
    },
    {
      label: 'successes inside the window do not reset the count (nginx)',
      maxFails: 2, failTimeoutMs: 1000,
      steps: [{ at: 0, fail: true }, { at: 10, ok: true }, { at: 20, fail: true }, { at: 21, ejected: true }],
    },
    {
      label: 'after the ejection one probe is let through; its success restores the server',
      maxFails: 1, failTimeoutMs: 1000,
      steps: [
        { at: 0, fail: true }, { at: 1000, ejected: false }, { at: 1000, attempt: true },
        { at: 1001, ejected: true }, // probe outstanding: nobody else
        { at: 1050, ok: true }, { at: 1051, ejected: false }, { at: 1052, attempt: true }, { at: 1053, ejected: false },
      ],
    },
    {
      label: 'a failed probe ejects again for fail_timeout',
      maxFails: 3, failTimeoutMs: 1000,
      steps: [
        { at: 0, fail: true }, { at: 1, fail: true }, { at: 2, fail: true }, { at: 1002, attempt: true },
        { at: 1100, fail: true }, { at: 1101, ejected: true }, { at: 2099, ejected: true }, { at: 2100, ejected: false },
      ],
    },
    {
      label: 'a probe without an answer frees the slot after fail_timeout',
      maxFails: 1, failTimeoutMs: 1000,
      steps: [{ at: 0, fail: true }, { at: 1000, attempt: true }, { at: 1999, ejected: true }, { at: 2000, ejected: false }],
    },
    {
      label: 'success of an older request during the ejection does not end it',
      maxFails: 1, failTimeoutMs: 1000,
      steps: [{ at: 0, fail: true }, { at: 10, ok: true }, { at: 11, ejected: true }],
    },
    {
      label: 'max_fails=0 disables ejection',
      maxFails: 0, failTimeoutMs: 1000,
      steps: [{ at: 0, fail: true }, { at: 1, fail: true }, { at: 2, fail: true }, { at: 3, ejected: false }],
    },
  ];
  for (const s of scenarios) runPassive(s.maxFails, s.failTimeoutMs, s.steps, s.label);
});

test('rise/fall: consecutive results change state, a different result resets the run', () => {
  const scenarios: { rise: number; fall: number; initiallyUp: boolean; results: string; ups: string; changes: string }[] = [
    { rise: 2, fall: 3, initiallyUp: true, results: 'xxx', ups: '110', changes: '001' },
    { rise: 2, fall: 3, initiallyUp: true, results: 'xxoxxx', ups: '111110', changes: '000001' },
    { rise: 2, fall: 3, initiallyUp: false, results: 'oxoo', ups: '0001', changes: '0001' },
    { rise: 1, fall: 1, initiallyUp: true, results: 'xoxo', ups: '0101', changes: '1111' },
    { rise: 2, fall: 2, initiallyUp: true, results: 'oooo', ups: '1111', changes: '0000' },
  ];
  for (const s of scenarios) {
    const rf = new RiseFall(s.rise, s.fall, s.initiallyUp);
    let ups = '';
    let changes = '';
    for (const r of s.results) {
      changes += rf.observe(r === 'o') ? '1' : '0';
      ups += rf.up ? '1' : '0';
    }
    assert.equal(ups, s.ups, JSON.stringify(s));
    assert.equal(changes, s.changes, JSON.stringify(s));
  }
  const rf = new RiseFall(3, 3, true);
  rf.observe(false);
  rf.observe(false);
  assert.equal(rf.failures, 2);
  rf.observe(true);
  assert.deepEqual([rf.successes, rf.failures], [1, 0]);
});

const CHECK: ActiveCheckSpec = { type: 'http', path: '/health', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2, expectStatuses: [200] };

function srv(id: string, extra: Partial<ServerSpec> = {}): ServerSpec {
  const [host, port] = id.split(':');
  return { id, host, port: Number(port), weight: 1, maxFails: 2, failTimeoutMs: 1000, down: false, backup: false, ...extra };
}

function table(servers: ServerSpec[], check?: ActiveCheckSpec) {
  const u: UpstreamSpec = {
    name: 'web', algorithm: 'roundrobin', servers, origin: 'consul',
    retry: { tries: 2, timeoutMs: 0, onStatuses: [502], nonIdempotent: false },
    ...(check ? { check } : {}),
  };
  return tableFromUpstreams({ web: u }, []);
}

test('PeerHealth: passive ejection, status shape, recovery', () => {
  const a = srv('127.0.0.1:1');
  const b = srv('127.0.0.1:2');
  const t = table([a, b]);
  const h = new PeerHealth();
  h.retain(t, 0);
  assert.equal(h.isAvailable(a, 0), true);
  h.onAttemptStart(a.id, 10);
  assert.equal(h.inflight(a.id), 1);
  h.onAttemptEnd(a.id, { ok: false, latencyMs: 5, error: 'ECONNREFUSED' }, 20);
  let st = h.status(t, 21)[0].servers[0];
  assert.equal(st.status, 'err');
  assert.equal(st.lastError, 'ECONNREFUSED');
  assert.equal(st.failCount, 1);
  assert.equal(st.active, null);
  assert.equal(st.inflight, 0);
  h.onAttemptStart(a.id, 30);
  h.onAttemptEnd(a.id, { ok: false, latencyMs: 5, error: 'ECONNRESET' }, 40);
  assert.equal(h.isAvailable(a, 41), false);
  st = h.status(t, 41)[0].servers[0];
  assert.equal(st.status, 'ejected');
  assert.equal(st.lastModified, 40);
  assert.equal(h.isAvailable(a, 1040), true); // ejection over: one probe
  h.onAttemptStart(a.id, 1040);
  assert.equal(h.isAvailable(a, 1041), false);
  h.onAttemptEnd(a.id, { ok: true, latencyMs: 3 }, 1050);
  assert.equal(h.isAvailable(a, 1051), true);
  st = h.status(t, 1051)[0].servers[0];
  assert.deepEqual([st.status, st.failCount, st.lastModified], ['ok', 0, 1050]);
  assert.doesNotThrow(() => JSON.stringify(h.status(t, 1051)));
});

test('PeerHealth: active checks with rise/fall; a new server starts available', () => {
  const a = srv('127.0.0.1:1');
  const t = table([a], CHECK);
  const h = new PeerHealth();
  h.retain(t, 0);
  assert.equal(h.isAvailable(a, 0), true);
  h.onActiveResult(a.id, false, 100, 'status 500');
  assert.equal(h.isAvailable(a, 100), true);
  h.onActiveResult(a.id, false, 200, 'status 500');
  assert.equal(h.isAvailable(a, 200), false);
  let st = h.status(t, 200)[0].servers[0];
  assert.deepEqual(st.active, { up: false, successes: 0, failures: 2 });
  assert.equal(st.status, 'ejected');
  assert.equal(st.lastError, 'status 500');
  h.onActiveResult(a.id, true, 300);
  h.onActiveResult(a.id, true, 400);
  assert.equal(h.isAvailable(a, 400), true);
  st = h.status(t, 400)[0].servers[0];
  assert.deepEqual(st.active, { up: true, successes: 2, failures: 0 });
});

test('PeerHealth.retain: kept servers keep state, removed ones are dropped, admin down reported', () => {
  const a = srv('127.0.0.1:1');
  const b = srv('127.0.0.1:2');
  const h = new PeerHealth();
  h.retain(table([a, b]), 0);
  h.onAttemptEnd(a.id, { ok: false, latencyMs: 1 }, 10);
  h.onAttemptEnd(a.id, { ok: false, latencyMs: 1 }, 11);
  h.onAttemptEnd(b.id, { ok: true, latencyMs: 40 }, 12);
  const c = srv('127.0.0.1:3', { down: true });
  const t2 = table([a, c]);
  h.retain(t2, 20);
  assert.equal(h.isAvailable(a, 21), false, 'a keeps its ejection');
  assert.equal(h.latencyEwma(b.id), undefined, 'b dropped');
  const st = h.status(t2, 21)[0].servers;
  assert.deepEqual(st.map((s) => [s.id, s.status]), [['127.0.0.1:1', 'ejected'], ['127.0.0.1:3', 'down']]);
});

test('PeerHealth EWMA: peak on slow samples, time decay towards faster ones, failures not fast', () => {
  const a = srv('127.0.0.1:1');
  const h = new PeerHealth({ ewmaDecayMs: 1000 });
  h.retain(table([a]), 0);
  h.onAttemptEnd(a.id, { ok: true, latencyMs: 10 }, 0);
  assert.equal(h.latencyEwma(a.id), 10);
  h.onAttemptEnd(a.id, { ok: true, latencyMs: 100 }, 10);
  assert.equal(h.latencyEwma(a.id), 100, 'peak taken at once');
  h.onAttemptEnd(a.id, { ok: true, latencyMs: 10 }, 1010);
  const v = h.latencyEwma(a.id)!;
  assert.ok(v > 40 && v < 50, `one decay constant later: ${v}`);
  h.onAttemptEnd(a.id, { ok: false, latencyMs: 1 }, 5000);
  assert.ok(h.latencyEwma(a.id)! >= 1000, 'a fast failure counts as slow');
});
