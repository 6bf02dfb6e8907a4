// The shared catalog seen by templates: consul-template's field names, maintenance as a status of its
// own, NodeAddress when the service has its own address, the tag filter of `service "tag.name"`, and
// a stable order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHealthAnswer } from '../../balancer/src/discovery/health-entries.js';
import { instanceViews, summaryViews } from '../../balancer/src/render/catalog-views.js';

const entry = (id: string, node: string, nodeAddr: string, addr: string, port: number, tags: string[], checks: { CheckID: string; Status: string }[]) => ({
  Node: { Node: node, Address: nodeAddr },
  Service: { ID: id, Service: 'web', Address: addr, Port: port, Tags: tags, Meta: { v: '1' } },
  Checks: checks,
});

test('instance views: fields, status, maintenance, node address, tag filter, order', () => {
  const parsed = parseHealthAnswer('web', [
    entry('web-2', 'n2', '10.0.0.2', '', 8080, ['v2'], [{ CheckID: 'serfHealth', Status: 'passing' }]),
    entry('web-1', 'n1', '10.0.0.1', '172.17.0.5', 8081, [], [{ CheckID: 'service:web-1', Status: 'warning' }]),
    entry('web-3', 'n1', '10.0.0.1', '10.0.0.1', 8082, ['v2'], [{ CheckID: '_service_maintenance:web-3', Status: 'critical' }]),
  ]);
  assert.equal(parsed.usable, true);
  const views = instanceViews(parsed.instances);
  assert.deepEqual(views.map((v) => [v.Node, v.ID, v.Address, v.NodeAddress, v.Port, v.Status]), [
    ['n1', 'web-1', '172.17.0.5', '10.0.0.1', 8081, 'warning'],
    ['n1', 'web-3', '10.0.0.1', '10.0.0.1', 8082, 'maintenance'],
    ['n2', 'web-2', '10.0.0.2', '10.0.0.2', 8080, 'passing'],
  ]);
  assert.deepEqual(views[0].Meta, { v: '1' });
  assert.equal(views[0].Name, 'web');
  assert.ok(Object.isFrozen(views[0]) && Object.isFrozen(views[0].Tags));
  assert.deepEqual(instanceViews(parsed.instances, 'v2').map((v) => v.ID), ['web-3', 'web-2']);
  assert.deepEqual(instanceViews(undefined), []);
  // instances without a node address of their own carry no extra field (dynamic mode stays lean)
  assert.equal('nodeAddress' in parsed.instances.find((i) => i.serviceId === 'web-2')!, false);
  assert.equal('maintenance' in parsed.instances.find((i) => i.serviceId === 'web-1')!, false);
});

test('summary views: sorted names, sorted tags', () => {
  const tags: Record<string, string[]> = { b: ['z', 'a'], a: [] };
  assert.deepEqual(summaryViews(new Set(['b', 'a', 'c']), (n) => tags[n] ?? []), [
    { Name: 'a', Tags: [] }, { Name: 'b', Tags: ['a', 'z'] }, { Name: 'c', Tags: [] },
  ]);
});
