// Blocking-query bounds shared by discovery and the renderer: the `wait` sent to Consul is capped at
// Consul's own 10 minutes, and the client deadline is an integer bounded by it (AbortSignal.timeout
// throws on a fractional delay, which once broke every KV fetch for waits such as 5s or 15s).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { blockingBounds, MAX_BLOCKING_WAIT_MS } from '../../balancer/src/discovery/blocking-query.js';
import { fetchDependency } from '../../balancer/src/render/consul-fetch.js';

test('blocking bounds: wait capped at 10 minutes, integer deadline just above the wait', () => {
  for (const waitMs of [0, 1000, 5000, 15_000, 45_000, 60_000, MAX_BLOCKING_WAIT_MS, 99 * 3_600_000]) {
    const b = blockingBounds(waitMs);
    const seconds = Number(b.wait.replace(/s$/, ''));
    assert.ok(seconds >= 1 && seconds <= 600, `${waitMs}: wait ${b.wait}`);
    assert.ok(Number.isInteger(b.deadlineMs), `${waitMs}: deadline ${b.deadlineMs} is an integer`);
    assert.ok(b.deadlineMs > seconds * 1000 && b.deadlineMs <= seconds * 1000 * 1.07 + 5_000, `${waitMs}: deadline ${b.deadlineMs}`);
  }
  assert.equal(blockingBounds(99 * 3_600_000).wait, '600s');
});

test('KV fetch with a 5 s wait: the blocking query is sent (no RangeError) with the capped wait', async () => {
  const seen: string[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    seen.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': '8' });
    res.end(JSON.stringify([{ Key: 'cfg/a', Value: Buffer.from('hello').toString('base64') }]));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const endpoint = { baseUrl: `http://127.0.0.1:${port}` };
    for (const waitMs of [5000, 15_000, 99 * 3_600_000]) {
      const r = await fetchDependency(endpoint, { kind: 'key', path: 'cfg/a' }, { index: 7, waitMs, signal: AbortSignal.timeout(5000) });
      assert.equal(r.index, 8);
      assert.deepEqual(r.value, { kind: 'key', value: 'hello' });
    }
    assert.match(seen[0], /[?&]index=7/);
    assert.match(seen[0], /[?&]wait=5s/);
    assert.match(seen[2], /[?&]wait=600s/);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});
