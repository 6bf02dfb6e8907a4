// The registrator's -metrics endpoint: registrations, deregistrations and Consul errors counted
// around the registry, resyncs and reconnects, served on its own listener and parsed back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { request } from 'undici';
import { RegistratorMetrics, startMetricsServer } from '../../registrator/src/metrics/registrator-metrics.js';
import { RegistryError, type Registry } from '../../registrator/src/registry/registry.js';
import { parseArgs } from '../../registrator/src/config.js';

interface ParsedMetric { name: string; type: string; metrics: { labels?: Record<string, string>; value?: string }[] }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => ParsedMetric[];

function fakeRegistry(failNext: { error?: Error }): Registry {
  const maybeFail = async () => {
    const e = failNext.error;
    failNext.error = undefined;
    if (e) throw e;
  };
  return {
    ping: maybeFail, register: maybeFail, deregister: maybeFail, listOurs: async () => { await maybeFail(); return []; },
    updateTtlCheck: maybeFail, setMaintenance: maybeFail, close: () => undefined,
  };
}

test('registrations, deregistrations, Consul errors by code, resyncs and reconnects, on GET /metrics', async () => {
  const m = new RegistratorMetrics();
  const fail: { error?: Error } = {};
  const reg = m.wrap(fakeRegistry(fail));
  const signal = new AbortController().signal;
  const record = { id: 'h:c:80', name: 'web' } as unknown as Parameters<Registry['register']>[0];
  for (let i = 0; i < 3; i++) await reg.register(record, signal);
  await reg.deregister('h:c:80', signal);
  fail.error = new RegistryError('ERR_REGISTRY_UNAVAILABLE', 'connection refused');
  await assert.rejects(reg.register(record, signal));
  fail.error = new RegistryError('ERR_REGISTRY_RECORD_FAILED', '429', { status: 429, overBudget: true });
  await assert.rejects(reg.deregister('x', signal));
  fail.error = new RegistryError('ERR_REGISTRY_ABORTED', 'shutdown');
  await assert.rejects(reg.ping(signal));
  m.eventStreamConnected();
  m.eventStreamConnected();
  m.eventStreamConnected();
  m.setBridgeSource(() => ({ resyncs: 4, lastResyncMs: 250, failingContainers: 1 }));

  const server = await startMetricsServer(m, '127.0.0.1', 0);
  try {
    const res = await request(`http://127.0.0.1:${server.address.port}/metrics`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const parsed = parsePrometheus(await res.body.text());
    const v = (name: string, labels: Record<string, string> = {}) => {
      const f = parsed.find((x) => x.name === name);
      assert.ok(f, `${name} missing`);
      const s = f.metrics.find((x) => Object.entries(labels).every(([k, val]) => x.labels?.[k] === val));
      return s ? Number(s.value) : undefined;
    };
    assert.equal(v('registrator_registrations_total'), 3, 'a failed registration is not a registration');
    assert.equal(v('registrator_deregistrations_total'), 1);
    assert.equal(v('registrator_consul_errors_total', { code: 'ERR_REGISTRY_UNAVAILABLE' }), 1);
    assert.equal(v('registrator_consul_errors_total', { code: 'ERR_REGISTRY_RECORD_FAILED' }), 1);
    assert.equal(v('registrator_consul_errors_total', { code: 'ERR_REGISTRY_ABORTED' }), undefined, 'our own shutdown is no Consul error');
    assert.equal(v('registrator_resyncs_total'), 4);
    assert.equal(v('registrator_last_resync_duration_seconds'), 0.25);
    assert.equal(v('registrator_docker_event_stream_reconnects_total'), 2);
    assert.ok(v('registrator_process_resident_memory_bytes')! > 0);
    const other = await request(`http://127.0.0.1:${server.address.port}/other`);
    await other.body.text();
    assert.equal(other.statusCode, 404);
  } finally {
    await server.close();
    m.stop();
  }
});

test('-metrics host:port is off by default and checked', () => {
  const host = { hostname: 'h' };
  const off = parseArgs(['consul://127.0.0.1:8500'], {}, host);
  assert.equal((off as { metricsListen?: unknown }).metricsListen, undefined);
  const on = parseArgs(['-metrics', '127.0.0.1:9102', 'consul://127.0.0.1:8500'], {}, host);
  assert.deepEqual((on as { metricsListen?: unknown }).metricsListen, { host: '127.0.0.1', port: 9102 });
  const bad = parseArgs(['-metrics', 'nope', 'consul://127.0.0.1:8500'], {}, host);
  assert.ok(bad instanceof Error, 'a bad -metrics address is refused');
  assert.match((bad as Error).message, /-metrics/);
});
