// The per-process gauges: event-loop delay comes from perf_hooks.monitorEventLoopDelay in the process
// itself, covers one interval (reset at every sample) and leaves out the sampling interval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessSampler } from '../../common/metrics/process-sampler.js';

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
