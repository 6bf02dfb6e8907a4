// The double as Consul's source has it: several nodes, node leave at one index, the extinction index,
// random tag order, the UI list's null, script checks refused, replace-existing-checks, Definition {},
// index noise, the agent's timing floors and a cluster without a leader. Each case names the source.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startConsulDouble, type ConsulDouble } from '../support/consul-double/index.js';
import { SCRIPTS_DISABLED } from '../support/consul-double/router.js';
import { until } from '../support/poll.js';

interface Reply {
  status: number;
  index: number;
  headers: Headers;
  text: string;
  json: any;
}

async function api(d: ConsulDouble, method: string, path: string, body?: unknown): Promise<Reply> {
  const res = await fetch(d.url + path, { method, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, index: Number(res.headers.get('x-consul-index')), headers: res.headers, text, json };
}

const catalogRegister = (d: ConsulDouble, body: unknown) => api(d, 'PUT', '/v1/catalog/register', body);
const serf = (status: string) => ({ CheckID: 'serfHealth', Name: 'Serf Health Status', Status: status });

/** A seeded [0,1) source, so the order tests do not depend on luck. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function withDouble(opts: Parameters<typeof startConsulDouble>[0], body: (d: ConsulDouble) => Promise<void>): Promise<void> {
  const d = await startConsulDouble({ noise: false, ...opts });
  try {
    await body(d);
  } finally {
    await d.close();
  }
}

describe('consul double: several nodes (catalog register/deregister with Node)', () => {
  it('registers instances on other nodes, each answered with its own node, and deregisters by ServiceID and CheckID', () =>
    withDouble({ nodeName: 'server' }, async (d) => {
      assert.equal((await catalogRegister(d, { Node: 'n1', Address: '10.0.0.1', Service: { ID: 'web-1', Service: 'web', Port: 80, Tags: ['a'] }, Checks: [serf('passing'), { CheckID: 'web-1-http', Name: 'http', ServiceID: 'web-1', Status: 'passing', Definition: { HTTP: 'http://10.0.0.1/h', Interval: '10s' } }] })).status, 200);
      assert.equal((await catalogRegister(d, { Node: 'n2', Address: '10.0.0.2', Service: { ID: 'web-1', Service: 'web', Port: 81 }, Check: serf('passing') })).status, 200);
      const nodes = (await api(d, 'GET', '/v1/catalog/nodes')).json.map((n: any) => [n.Node, n.Address]);
      assert.deepEqual(nodes, [['n1', '10.0.0.1'], ['n2', '10.0.0.2'], ['server', '127.0.0.1']]);
      const health = (await api(d, 'GET', '/v1/health/service/web')).json;
      assert.deepEqual(health.map((e: any) => [e.Node.Node, e.Node.Address, e.Service.ID, e.Service.Port]), [['n1', '10.0.0.1', 'web-1', 80], ['n2', '10.0.0.2', 'web-1', 81]]);
      assert.deepEqual(health[0].Checks.map((c: any) => c.CheckID), ['serfHealth', 'web-1-http']);
      // a catalog registration keeps the Definition it was given
      assert.equal(health[0].Checks[1].Definition.HTTP, 'http://10.0.0.1/h');
      // a check of a service the node does not have is refused (catalog.go ensureCheckTxn: ErrMissingService)
      const missing = await catalogRegister(d, { Node: 'n2', Address: '10.0.0.2', Check: { CheckID: 'x', ServiceID: 'nope' } });
      assert.equal(missing.status, 500);
      assert.match(missing.text, /Missing service registration/);
      assert.equal((await api(d, 'PUT', '/v1/catalog/deregister', { Node: 'n1', CheckID: 'web-1-http' })).status, 200);
      assert.deepEqual((await api(d, 'GET', '/v1/health/service/web')).json[0].Checks.map((c: any) => c.CheckID), ['serfHealth']);
      await api(d, 'PUT', '/v1/catalog/deregister', { Node: 'n2', ServiceID: 'web-1' });
      assert.deepEqual((await api(d, 'GET', '/v1/catalog/service/web')).json.map((s: any) => s.Node), ['n1']);
      // the agent endpoints list only the agent's own node
      assert.deepEqual((await api(d, 'GET', '/v1/agent/services')).json, {});
    }));

  it("a node's serfHealth counts for every instance of the node, and its change moves every one of their indexes", () =>
    withDouble({}, async (d) => {
      for (const name of ['a', 'b']) await catalogRegister(d, { Node: 'n1', Address: '10.0.0.1', Service: { ID: `${name}-1`, Service: name, Port: 1 }, Check: serf('passing') });
      await catalogRegister(d, { Node: 'n2', Address: '10.0.0.2', Service: { ID: 'a-2', Service: 'a', Port: 1 }, Check: serf('passing') });
      const before = await api(d, 'GET', '/v1/health/service/b');
      assert.equal((await api(d, 'GET', '/v1/health/service/a?passing')).json.length, 2);
      assert.equal(d.nodeFail('n1'), true);
      const a = await api(d, 'GET', '/v1/health/service/a?passing');
      const b = await api(d, 'GET', '/v1/health/service/b?passing');
      assert.deepEqual(a.json.map((e: any) => e.Service.ID), ['a-2']);
      assert.deepEqual(b.json, []);
      // ensureCheckTxn on a node check: updateAllServiceIndexesOfNode
      assert.ok(b.index > before.index);
      assert.equal(a.index, b.index);
      assert.equal((await api(d, 'GET', '/v1/health/service/b')).json[0].Checks[0].Output, 'Agent not live or unreachable');
      d.nodeRecover('n1');
      assert.equal((await api(d, 'GET', '/v1/health/service/b?passing')).json.length, 1);
      // the same through the HTTP API (works on a real agent too)
      await catalogRegister(d, { Node: 'n2', Address: '10.0.0.2', Check: serf('critical') });
      assert.deepEqual((await api(d, 'GET', '/v1/health/service/a?passing')).json.map((e: any) => e.Service.ID), ['a-1']);
    }));

  it('a node leaving removes every service and check of the node at ONE index (deleteNodeTxn)', () =>
    withDouble({}, async (d) => {
      for (let i = 0; i < 50; i++) {
        await catalogRegister(d, { Node: 'n1', Address: '10.0.0.1', Service: { ID: `s${i}-1`, Service: `s${i}`, Port: 1 }, Check: serf('passing') });
        await catalogRegister(d, { Node: 'n2', Address: '10.0.0.2', Service: { ID: `s${i}-2`, Service: `s${i}`, Port: 2 }, Check: serf('passing') });
      }
      await catalogRegister(d, { Node: 'n2', Address: '10.0.0.2', Service: { ID: 'only-2', Service: 'only', Port: 2 } });
      const before = d.state.lastIndex();
      assert.equal((await api(d, 'PUT', '/v1/catalog/deregister', { Node: 'n2' })).status, 200);
      assert.equal(d.state.lastIndex(), before + 1, 'one raft index for the whole node');
      const leaveIndex = before + 1;
      for (let i = 0; i < 50; i++) {
        const r = await api(d, 'GET', `/v1/health/service/s${i}`);
        assert.deepEqual(r.json.map((e: any) => e.Service.ID), [`s${i}-1`]);
        assert.equal(r.index, leaveIndex, `s${i} answers the leave's index`);
      }
      // "only" lost its last instance: it answers service_last_extinction
      assert.equal((await api(d, 'GET', '/v1/health/service/only')).index, leaveIndex);
      assert.equal((await api(d, 'GET', '/v1/catalog/node/n2')).json, null);
      assert.equal(d.nodeLeave('n1'), true);
      assert.deepEqual(Object.keys((await api(d, 'GET', '/v1/catalog/services')).json), ['consul']);
    }));

  it('/v1/txn applies Service set and delete at ONE index, all or none (state/txn.go txnService, txn_endpoint.go)', () =>
    withDouble({}, async (d) => {
      await catalogRegister(d, { Node: 'n1', Address: '10.0.0.1', Service: { ID: 'web-1', Service: 'web', Port: 80 }, Check: serf('passing') });
      const before = d.state.lastIndex();
      // one instance out and another in: the count stays 1, both writes at one index
      const ok = await api(d, 'PUT', '/v1/txn', [
        { Service: { Verb: 'delete', Node: 'n1', Service: { ID: 'web-1' } } },
        { Service: { Verb: 'set', Node: 'n1', Service: { ID: 'web-2', Service: 'web', Port: 81 } } },
      ]);
      assert.equal(ok.status, 200, ok.text);
      assert.equal(d.state.lastIndex(), before + 1, 'one raft index for the transaction');
      assert.deepEqual(ok.json.Errors, null);
      assert.deepEqual(ok.json.Results.map((r: any) => [r.Service.ID, r.Service.Port, r.Service.CreateIndex]), [['web-2', 81, before + 1]]);
      const h = await api(d, 'GET', '/v1/health/service/web');
      assert.deepEqual(h.json.map((e: any) => e.Service.ID), ['web-2']);
      assert.equal(h.index, before + 1);
      // an error in any op: 409 with every error, nothing written
      const bad = await api(d, 'PUT', '/v1/txn', [
        { Service: { Verb: 'delete', Node: 'n1', Service: { ID: 'web-2' } } },
        { Service: { Verb: 'set', Node: 'nowhere', Service: { ID: 'web-3', Service: 'web', Port: 82 } } },
        { Service: { Verb: 'set', Node: 'n1', Service: { ID: 'x' } } },
      ]);
      assert.equal(bad.status, 409);
      assert.deepEqual(bad.json, { Results: null, Errors: [{ OpIndex: 2, What: 'Must provide service name' }] });
      const missingNode = await api(d, 'PUT', '/v1/txn', [{ Service: { Verb: 'set', Node: 'nowhere', Service: { ID: 'web-3', Service: 'web', Port: 82 } } }]);
      assert.deepEqual(missingNode.json.Errors, [{ OpIndex: 0, What: 'Missing node registration' }]);
      assert.equal(d.state.lastIndex(), before + 1, 'nothing written');
      assert.equal((await api(d, 'PUT', '/v1/txn', { not: 'a list' })).status, 400);
      const tooMany = await api(d, 'PUT', '/v1/txn', Array.from({ length: 65 }, () => ({ Service: { Verb: 'get', Node: 'n1', Service: { ID: 'web-2' } } })));
      assert.equal(tooMany.status, 413);
      assert.match(tooMany.text, /Transaction contains too many operations \(65 > 64\)/);
    }));

  it('a service without instances answers the GLOBAL service_last_extinction index, not a tombstone of its own', () =>
    withDouble({}, async (d) => {
      await catalogRegister(d, { Node: 'n1', Address: '10.0.0.1', Service: { ID: 'x-1', Service: 'x', Port: 1 } });
      await catalogRegister(d, { Node: 'n1', Address: '10.0.0.1', Service: { ID: 'y-1', Service: 'y', Port: 1 } });
      // never existed, nothing ever went extinct: the catalog tables' index
      const never = await api(d, 'GET', '/v1/health/service/never');
      assert.equal(never.index, d.state.indexForCatalog());
      await api(d, 'PUT', '/v1/catalog/deregister', { Node: 'n1', ServiceID: 'x-1' });
      const xGone = (await api(d, 'GET', '/v1/health/service/x')).index;
      await api(d, 'PUT', '/v1/catalog/deregister', { Node: 'n1', ServiceID: 'y-1' });
      const yGone = (await api(d, 'GET', '/v1/health/service/y')).index;
      assert.ok(yGone > xGone);
      // x, gone earlier, now answers y's extinction: maxIndexForService(serviceExists=false)
      assert.equal((await api(d, 'GET', '/v1/health/service/x')).index, yGone);
      assert.equal((await api(d, 'GET', '/v1/health/service/never')).index, yGone);
      assert.equal((await api(d, 'GET', '/v1/catalog/service/x')).index, yGone);
    }));
});

describe('consul double: answer shapes', () => {
  it('catalog/services lists each name\'s tags in Go map order, shuffled per answer (catalog.go Services)', () =>
    withDouble({ random: seeded(7) }, async (d) => {
      const tags = Array.from({ length: 8 }, (_, i) => `t${i}`);
      await api(d, 'PUT', '/v1/agent/service/register', { ID: 'w', Name: 'web', Tags: tags, Port: 1 });
      const orders = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const r = (await api(d, 'GET', '/v1/catalog/services')).json;
        assert.deepEqual([...r.web].sort(), tags);
        orders.add(r.web.join(','));
      }
      assert.ok(orders.size > 1, `10 answers, ${orders.size} order(s)`);
    }));

  it('/v1/internal/ui/services has ui_endpoint.go\'s field names and types, and answers null when it has no row', () =>
    withDouble({ nodeName: 'server' }, async (d) => {
      await catalogRegister(d, { Node: 'n1', Address: '10.0.0.1', Service: { ID: 'web-1', Service: 'web', Port: 1, Tags: ['b', 'a'] }, Checks: [serf('passing'), { CheckID: 'c', ServiceID: 'web-1', Status: 'warning' }] });
      await catalogRegister(d, { Node: 'n2', Address: '10.0.0.2', Service: { ID: 'web-2', Service: 'web', Port: 1 }, Check: serf('critical') });
      const rows = (await api(d, 'GET', '/v1/internal/ui/services')).json;
      const web = rows.find((r: any) => r.Name === 'web');
      assert.deepEqual(
        { Nodes: web.Nodes, InstanceCount: web.InstanceCount, ChecksPassing: web.ChecksPassing, ChecksWarning: web.ChecksWarning, ChecksCritical: web.ChecksCritical, Tags: web.Tags },
        { Nodes: ['n1', 'n2'], InstanceCount: 2, ChecksPassing: 1, ChecksWarning: 1, ChecksCritical: 1, Tags: ['a', 'b'] },
      );
      for (const [field, type] of [['Name', 'string'], ['Datacenter', 'string'], ['InstanceCount', 'number'], ['ChecksPassing', 'number'], ['ConnectedWithProxy', 'boolean'], ['GatewayConfig', 'object']] as const) {
        assert.equal(typeof web[field], type, field);
      }
      // deregister every node, the server's too (a real catalog allows it until the leader reconciles)
      for (const node of ['n1', 'n2', 'server']) await api(d, 'PUT', '/v1/catalog/deregister', { Node: node });
      const empty = await api(d, 'GET', '/v1/internal/ui/services');
      assert.equal(empty.status, 200);
      assert.equal(empty.text, 'null');
    }));

  it('/v1/agent/checks answers Definition {} for agent-registered checks (agent.go addServiceInternal never fills it)', () =>
    withDouble({}, async (d) => {
      await api(d, 'PUT', '/v1/agent/service/register', { ID: 'w', Name: 'web', Port: 1, Check: { HTTP: 'http://127.0.0.1:1/h', Interval: '10s' } });
      const c = (await api(d, 'GET', '/v1/agent/checks')).json['service:w'];
      assert.deepEqual(c.Definition, {});
      assert.equal(c.Type, 'http');
      assert.deepEqual((await api(d, 'GET', '/v1/health/service/web')).json[0].Checks[1].Definition, {});
    }));
});

describe('consul double: agent registration as agent.go has it', () => {
  it('refuses script and docker checks with a 500 and Consul\'s text, and registers nothing (enable_script_checks off)', () =>
    withDouble({}, async (d) => {
      for (const check of [{ Args: ['/bin/true'], Interval: '10s' }, { Script: '/bin/true', Interval: '10s' }, { DockerContainerID: 'abc', Args: ['/bin/true'], Interval: '10s' }]) {
        const r = await api(d, 'PUT', '/v1/agent/service/register', { ID: 's', Name: 's', Port: 1, Checks: [{ TTL: '10s' }, check] });
        assert.equal(r.status, 500);
        assert.equal(r.text, SCRIPTS_DISABLED);
      }
      assert.deepEqual((await api(d, 'GET', '/v1/agent/services')).json, {});
      assert.deepEqual((await api(d, 'GET', '/v1/agent/checks')).json, {});
    }));

  it('accepts them when started with enableScriptChecks', () =>
    withDouble({ enableScriptChecks: true }, async (d) => {
      assert.equal((await api(d, 'PUT', '/v1/agent/service/register', { ID: 's', Name: 's', Port: 1, Check: { Args: ['/bin/true'], Interval: '10s' } })).status, 200);
      assert.equal((await api(d, 'GET', '/v1/agent/checks')).json['service:s'].Type, 'script');
    }));

  it('keeps the checks a re-registration does not name unless ?replace-existing-checks, and keeps a re-registered check\'s status', () =>
    withDouble({}, async (d) => {
      await api(d, 'PUT', '/v1/agent/service/register', { ID: 's', Name: 's', Port: 1, Checks: [{ TTL: '30s', Status: 'passing' }, { TTL: '30s' }] });
      assert.deepEqual(Object.keys((await api(d, 'GET', '/v1/agent/checks')).json), ['service:s:1', 'service:s:2']);
      // one check now: its default ID is service:s; the old two stay
      await api(d, 'PUT', '/v1/agent/service/register', { ID: 's', Name: 's', Port: 1, Check: { TTL: '30s', Status: 'passing' } });
      assert.deepEqual(Object.keys((await api(d, 'GET', '/v1/agent/checks')).json), ['service:s', 'service:s:1', 'service:s:2']);
      assert.equal((await api(d, 'GET', '/v1/health/service/s?passing')).json.length, 0, 'the stale critical check holds the instance');
      // with replace: service:s goes; the snapshot: service:s:1 registered again with Status critical keeps passing
      await api(d, 'PUT', '/v1/agent/service/register?replace-existing-checks=true', { ID: 's', Name: 's', Port: 1, Checks: [{ TTL: '30s', Status: 'critical' }, { TTL: '30s' }] });
      const checks = (await api(d, 'GET', '/v1/agent/checks')).json;
      assert.deepEqual(Object.keys(checks), ['service:s:1', 'service:s:2']);
      assert.equal(checks['service:s:1'].Status, 'passing');
    }));
});

describe('consul double: index noise', () => {
  it('KV and coordinate writes move the raft index but wake no catalog or health query', () =>
    withDouble({ noise: { kvWritesPerSec: 100, coordinates: false } }, async (d) => {
      await api(d, 'PUT', '/v1/agent/service/register', { ID: 'w', Name: 'web', Port: 1 });
      const h = await api(d, 'GET', '/v1/health/service/web');
      const ui = await api(d, 'GET', '/v1/internal/ui/services');
      const raft0 = d.state.lastIndex();
      const t0 = Date.now();
      const [h2, ui2] = await Promise.all([
        api(d, 'GET', `/v1/health/service/web?index=${h.index}&wait=500ms`),
        api(d, 'GET', `/v1/internal/ui/services?index=${ui.index}&wait=500ms`),
        api(d, 'PUT', '/v1/coordinate/update', { Node: d.state.agentNode, Coord: { Vec: [0, 0, 0, 0, 0, 0, 0, 0], Error: 1.5, Adjustment: 0, Height: 1e-5 } }),
      ]);
      assert.ok(Date.now() - t0 >= 480, 'both waited out their wait');
      assert.equal(h2.index, h.index);
      assert.equal(ui2.index, ui.index);
      assert.ok(d.state.lastIndex() > raft0 + 10, `raft index ${raft0} -> ${d.state.lastIndex()}`);
    }));
});

describe("consul double: the agent's timing floors", () => {
  it('raises DeregisterCriticalServiceAfter to the 1-minute floor by default (agent.go CheckDeregisterIntervalMin)', () =>
    withDouble({ reapIntervalMs: 20 }, async (d) => {
      await api(d, 'PUT', '/v1/agent/service/register', { ID: 'doomed', Name: 'd', Port: 1, Check: { TTL: '10s', DeregisterCriticalServiceAfter: '50ms' } });
      // 10 reaper rounds past the given 50 ms: still there, the floor is 60 s
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(Object.keys((await api(d, 'GET', '/v1/agent/services')).json), ['doomed']);
    }));

  it('an output-only result is the agent\'s at once and the catalog\'s only up to check_update_interval later', () =>
    // stagger fixed at half the interval (3 s): the 'not yet' reads come well before it, even on a loaded machine
    withDouble({ checkUpdateIntervalMs: 6000, random: () => 0.5 }, async (d) => {
      await api(d, 'PUT', '/v1/agent/service/register', { ID: 'w', Name: 'web', Port: 1, Check: { TTL: '30s', Status: 'passing' } });
      const h = await api(d, 'GET', '/v1/health/service/web');
      await api(d, 'PUT', '/v1/agent/check/pass/service:w?note=new-output');
      assert.equal((await api(d, 'GET', '/v1/agent/checks')).json['service:w'].Output, 'new-output');
      const now = await api(d, 'GET', '/v1/health/service/web');
      assert.equal(now.index, h.index, 'no catalog write yet');
      const synced = await until('the deferred output reaches the catalog', async () => {
        const r = await api(d, 'GET', '/v1/health/service/web');
        return r.json[0].Checks[1].Output === 'new-output' ? r : undefined;
      }, 10_000);
      assert.ok(synced.index > h.index);
      // a status change goes at once
      await api(d, 'PUT', '/v1/agent/check/fail/service:w?note=down');
      assert.equal((await api(d, 'GET', '/v1/health/service/web')).json[0].Checks[1].Status, 'critical');
    }));

  it('/v1/status/leader answers 200 "" without a leader; consistent reads fail, ?stale reads say KnownLeader false', () =>
    withDouble({}, async (d) => {
      d.setLeader(false);
      const leader = await api(d, 'GET', '/v1/status/leader');
      assert.deepEqual([leader.status, leader.json], [200, '']);
      const read = await api(d, 'GET', '/v1/health/service/consul');
      assert.deepEqual([read.status, read.text], [500, 'No cluster leader']);
      const stale = await api(d, 'GET', '/v1/health/service/consul?stale');
      assert.equal(stale.status, 200);
      assert.equal(stale.headers.get('x-consul-knownleader'), 'false');
      d.setLeader(true);
      assert.match((await api(d, 'GET', '/v1/status/leader')).json, /:8300$/);
    }));
});
