// The drain test's timeline reader (test/support/drain-timeline.ts): the primary's swap whose diff drops
// the server, its publish to every worker, the registrator's drain line; workers' own swap lines and
// other servers' diffs are not taken for it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { balancerDropTimes, describeTimeline, registratorDrainTimes } from '../support/drain-timeline.js';

const line = (o: object) => JSON.stringify(o);

test('balancerDropTimes: the primary swap that removes the server, then its publish', () => {
  const output = [
    line({ time: 100, msg: 'routing table swapped', version: 'v1', cause: 'catalog' }),
    line({ time: 100, msg: 'table diff', change: '- web 10.0.0.3:80 weight=1' }),
    line({ time: 120, msg: 'table published', version: 'v1' }),
    'not json',
    line({ time: 200, msg: 'routing table swapped', version: 'v2', cause: 'catalog' }),
    line({ time: 201, msg: 'routing table swapped', version: 'v2', previous: 'v1', changedUpstreams: ['web'] }),
    'worker 1: ' + line({ time: 202, msg: 'routing table swapped', version: 'v1' }),
    line({ time: 203, msg: 'table diff', change: '- web 10.0.0.2:80 weight=1' }),
    line({ time: 230, msg: 'table published', version: 'v1' }),
    line({ time: 240, msg: 'table published', version: 'v2' }),
  ].join('\n');
  assert.deepEqual(balancerDropTimes(output, 'web', '10.0.0.2:80'), { tableSwappedAt: 200, publishedAt: 240 });
  assert.deepEqual(balancerDropTimes(output, 'web', '10.0.0.3:80'), { tableSwappedAt: 100, publishedAt: 120 });
  assert.deepEqual(balancerDropTimes(output, 'web', '10.0.0.9:80'), {});
  assert.deepEqual(balancerDropTimes(output, 'api', '10.0.0.2:80'), {});
});

test('registratorDrainTimes and describeTimeline', () => {
  const logs = [{ event: 'drain', serviceId: 's1', time: 1050, killEventAt: 1002, killSeenAt: 1010, writeMs: 38 }];
  const r = registratorDrainTimes(logs, 's1');
  assert.deepEqual(r, { killEventAt: 1002, killSeenAt: 1010, maintenanceAt: 1050, writeMs: 38 });
  assert.deepEqual(registratorDrainTimes(logs, 's2'), {});
  assert.equal(
    describeTimeline({ sigtermAt: 1000, ...r, tableSwappedAt: 1080, publishedAt: 1100 }),
    'SIGTERM +0, kill event +2, seen +10, maintenance written +50, table swapped +80, all workers +100 ms (delivery 8, registrator 40 of which the write 38, consul->primary 30, primary->workers 20)',
  );
});
