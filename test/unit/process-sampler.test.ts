// The per-process gauges: event-loop delay comes from perf_hooks.monitorEventLoopDelay in the process
// itself plus a bridge timer over the span its reset drops, covers one interval (reset at every sample)
// and leaves out the sampling interval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeLag, ProcessSampler } from '../../common/metrics/process-sampler.js';

const tick = () => new Promise((r) => setTimeout(r, 50));

test('a blocked event loop shows as lag in the next sample, and only in that one', async () => {
  const sampler = new ProcessSampler();
  try {
    await tick();
    sampler.sample();
    // block the loop for 200 ms (the stimulus; nothing below bounds wall time)
    const until = performance.now() + 200;
    while (performance.now() < until) { /* busy */ }
    await tick();
    const blocked = sampler.sample();
    assert.ok(blocked.eventLoopLagMaxSeconds >= 0.15, `max lag ${blocked.eventLoopLagMaxSeconds} s after a 200 ms block`);
    assert.ok(blocked.eventLoopLagMaxSeconds < 60, 'seconds, not ns or ms');
    assert.ok(blocked.eventLoopLagMeanSeconds <= blocked.eventLoopLagMaxSeconds);
    assert.ok(blocked.rssBytes > 0 && blocked.heapUsedBytes > 0 && blocked.heapTotalBytes >= blocked.heapUsedBytes);
    await tick();
    await tick();
    const after = sampler.sample();
    assert.ok(after.eventLoopLagMaxSeconds < blocked.eventLoopLagMaxSeconds, `reset at each sample: ${after.eventLoopLagMaxSeconds} after ${blocked.eventLoopLagMaxSeconds}`);
  } finally {
    sampler.stop();
  }
});

test('a block right after a sample (the span reset drops) shows in the next sample', async () => {
  const sampler = new ProcessSampler();
  try {
    await tick();
    await tick();
    sampler.sample();
    // same turn as the sample, as when a table is applied right after the metrics tick
    const until = performance.now() + 200;
    while (performance.now() < until) { /* busy */ }
    await tick();
    const blocked = sampler.sample();
    assert.ok(blocked.eventLoopLagMaxSeconds >= 0.15, `max lag ${blocked.eventLoopLagMaxSeconds} s after a 200 ms block`);
    assert.ok(blocked.eventLoopLagP99Seconds >= 0.15, `p99 lag ${blocked.eventLoopLagP99Seconds} s (under 100 ticks)`);
  } finally {
    sampler.stop();
  }
});

const ms = (v: number) => v * 1e6; // histogram values: whole 20 ms intervals in ns
test('mergeLag: the bridge lateness joins the ticks, the 20 ms resolution is left out', () => {
  const cases = [
    { name: 'no ticks, no bridge', ticks: { count: 0, mean: NaN, p99: 0, max: 0 }, bridge: undefined, want: { mean: 0, p99: 0, max: 0 } },
    { name: 'on-time ticks', ticks: { count: 50, mean: ms(20), p99: ms(20), max: ms(20) }, bridge: 0, want: { mean: 0, p99: 0, max: 0 } },
    { name: 'a bridge block', ticks: { count: 3, mean: ms(21), p99: ms(21), max: ms(21) }, bridge: 0.2, want: { mean: (0.003 + 0.2) / 4, p99: 0.2, max: 0.2 } },
    { name: 'a tick block', ticks: { count: 9, mean: ms(40), p99: ms(200), max: ms(200) }, bridge: 0.001, want: { mean: (0.18 + 0.001) / 10, p99: 0.18, max: 0.18 } },
    { name: 'over 100 ticks: one bridge value leaves p99', ticks: { count: 200, mean: ms(20), p99: ms(22), max: ms(30) }, bridge: 0.5, want: { mean: 0.5 / 201, p99: 0.002, max: 0.5 } },
    { name: 'bridge fired early (stale loop time)', ticks: { count: 1, mean: ms(20), p99: ms(20), max: ms(20) }, bridge: -0.001, want: { mean: 0, p99: 0, max: 0 } },
  ];
  for (const c of cases) {
    const got = mergeLag(c.ticks, c.bridge);
    for (const k of ['mean', 'p99', 'max'] as const) {
      assert.ok(Math.abs(got[k] - c.want[k]) < 1e-9, `${c.name}: ${k} ${got[k]} want ${c.want[k]}`);
    }
  }
});
