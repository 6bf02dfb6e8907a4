// Readable table diffs for the swap log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffTables } from '../../balancer/src/routing/diff.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { adminUpstream } from '../../balancer/src/routing/server-list.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';

const d = DEFAULT_TABLE_DEFAULTS;

test('diff lines for added, removed and changed upstreams, servers and routes', () => {
  const t1 = tableFromUpstreams({
    web: adminUpstream('web', [{ host: '127.0.0.1', port: 8081 }, { host: '127.0.0.1', port: 8082 }], d),
    old: adminUpstream('old', [{ host: '127.0.0.1', port: 9000 }], d),
  }, [{ host: '', pathPrefix: '/old', upstream: 'old' }]);
  const t2 = tableFromUpstreams({
    web: adminUpstream('web', [{ host: '127.0.0.1', port: 8081, weight: 2 }, { host: '127.0.0.1', port: 8083, backup: true }], d, { algorithm: 'ewma' }),
    api: adminUpstream('api', [{ host: '127.0.0.1', port: 7000 }], d),
  }, [{ host: 'api.example.com', pathPrefix: '/v1', upstream: 'api' }]);
  assert.deepEqual(diffTables(undefined, t1), [
    '+ upstream old', '+ old 127.0.0.1:9000 weight=1',
    '+ upstream web', '+ web 127.0.0.1:8081 weight=1', '+ web 127.0.0.1:8082 weight=1',
    '+ route */old -> old',
  ]);
  assert.deepEqual(diffTables(t1, t2), [
    '+ upstream api', '+ api 127.0.0.1:7000 weight=1',
    '- upstream old', '- old 127.0.0.1:9000 weight=1',
    '~ web lb roundrobin->ewma',
    '- web 127.0.0.1:8082 weight=1',
    '~ web 127.0.0.1:8081 weight=1->2',
    '+ web 127.0.0.1:8083 weight=1 backup',
    '- route */old -> old',
    '+ route api.example.com/v1 -> api',
  ]);
  assert.deepEqual(diffTables(t2, t2), []);
});
