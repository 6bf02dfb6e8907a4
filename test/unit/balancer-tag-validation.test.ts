// Tag options are validated when the table is built (issue 12 item 1): a check path or hash header
// that http.request or a header lookup cannot take is a warning for that service only; its siblings and
// its other options are kept, and every check path that is accepted can be sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { buildRouteTable } from '../../balancer/src/routing/build-table.js';
import { checkPathProblem, DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogInstance } from '../../balancer/src/routing/types.js';

function inst(service: string, n: number, tags: string[]): CatalogInstance {
  return { serviceId: `${service}-${n}`, service, node: 'n', address: '127.0.0.1', port: 8000 + n, tags, meta: {}, status: 'passing' };
}

/** http.request throws synchronously for a path it refuses (ERR_UNESCAPED_CHARACTERS). */
function requestAccepts(path: string): boolean {
  try {
    const req = http.request({ host: '127.0.0.1', port: 9, path, method: 'GET' });
    req.on('error', () => undefined);
    req.destroy();
    return true;
  } catch {
    return false;
  }
}

test('a check path http.request cannot send is a warning for that service only', () => {
  const bad = ['check=http:/health check', 'check=http:/h\tx', 'check=http:/ü', 'check=http:/a#b', 'check=http:/%zz', 'check=http:/x\u0000', `check=http:/${'a'.repeat(1100)}`];
  for (const tag of bad) {
    const { table, warnings } = buildRouteTable({
      snapshot: { services: { web: [inst('web', 1, [tag, 'lb=wrr', 'weight=2'])], api: [inst('api', 1, ['check=http:/ok'])] } },
      adminUpstreams: {},
      defaults: DEFAULT_TABLE_DEFAULTS,
    });
    const web = table.upstreams.web;
    assert.ok(web, `${tag}: the service is kept`);
    assert.equal(web.check, undefined, `${JSON.stringify(tag)}: no check from a bad path`);
    assert.equal(web.algorithm, 'wrr', 'its other options are kept');
    assert.equal(web.servers[0].weight, 2);
    assert.equal(table.upstreams.api.check?.path, '/ok', 'the sibling keeps its check');
    assert.ok(warnings.some((w) => w.startsWith('service web:') && w.includes('check path')), `${JSON.stringify(tag)}: ${warnings.join(' | ')}`);
  }
});

test('check paths that are accepted are sendable; good ones are kept as given', () => {
  for (const path of ['/', '/health', '/a/b?x=1&y=%20z', "/~user/!$&'()*+,;=:@", '/%41']) {
    assert.equal(checkPathProblem(path), undefined, path);
    assert.ok(requestAccepts(path), path);
  }
  for (const path of ['health', '/a b', '/a\r\nHost: evil', '/ü', '/a#b', '/%g0']) {
    assert.ok(checkPathProblem(path), `${JSON.stringify(path)} accepted`);
  }
  // every printable and control code point: accepted ones must be sendable
  for (let c = 0; c < 0x180; c++) {
    const path = `/x${String.fromCharCode(c)}y`;
    if (checkPathProblem(path) === undefined) assert.ok(requestAccepts(path), `code ${c} accepted but not sendable`);
  }
});

test('hash=header:<name> must be a header token', () => {
  for (const tag of ['hash=header:a b', 'hash=header:x\u0000', 'hash=header:a:b', 'hash=header:ü']) {
    const { table, warnings } = buildRouteTable({
      snapshot: { services: { web: [inst('web', 1, [tag, 'lb=chash'])] } }, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS,
    });
    assert.deepEqual(table.upstreams.web.hashKey, { source: 'ip' }, `${JSON.stringify(tag)}: chash falls back to the client IP`);
    assert.ok(warnings.some((w) => w.includes(`"${tag}"`)), `${JSON.stringify(tag)}: ${warnings.join(' | ')}`);
  }
  const ok = buildRouteTable({ snapshot: { services: { web: [inst('web', 1, ['hash=header:X-User_Id', 'lb=chash'])] } }, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS });
  assert.deepEqual(ok.table.upstreams.web.hashKey, { source: 'header', name: 'x-user_id' });
});

test('dynamic mode: a tag the balancer does not read is ignored (";" and all); a bad value of its own tag is a warning for that service only', () => {
  const foreign = ['/(;,:-_)/', 'a;b', 'x#y', '"q"', '{b}', 'back\\slash', 'has space'];
  const { table, warnings } = buildRouteTable({
    snapshot: { services: { db: [inst('db', 1, [...foreign, 'lb=wrr', 'weight=2'])], web: [inst('web', 1, ['lb=wrr;', 'max_fails=2'])] } },
    adminUpstreams: {},
    defaults: DEFAULT_TABLE_DEFAULTS,
  });
  assert.ok(table.upstreams.db, 'the service is routed');
  assert.equal(table.upstreams.db.algorithm, 'wrr');
  assert.equal(table.upstreams.db.servers[0].weight, 2);
  assert.ok(!warnings.some((w) => w.startsWith('service db:')), `no warning for tags the balancer does not read: ${warnings.join(' | ')}`);
  assert.ok(table.upstreams.web, 'a bad lb= value does not cost the service');
  assert.equal(table.upstreams.web.algorithm, DEFAULT_TABLE_DEFAULTS.algorithm);
  assert.equal(table.upstreams.web.servers[0].maxFails, 2);
  assert.ok(warnings.some((w) => w.startsWith('service web:') && w.includes('lb=wrr;')), warnings.join(' | '));
});
