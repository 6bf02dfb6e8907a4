// The randomized follower test's pure parts: the seeded op generator replays, covers every op kind,
// keeps address:port unique per service; the shrinker finds a minimal failing sub-sequence; the routing
// diff names what differs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeOp, generateOps, shrinkOps, type ConsulOp } from '../support/consul-ops-generator.js';
import { diffRouting } from '../support/follower-harness.js';

const flat = (ops: readonly ConsulOp[]): ConsulOp[] => ops.flatMap((o) => (o.kind === 'burst' ? o.ops : [o]));

describe('consul ops generator', () => {
  const opts = { prefix: 'tx', agentNode: 'agent', ops: 3000 };

  it('gives the same sequence for the same seed, another for another seed', () => {
    assert.deepEqual(generateOps(42, opts), generateOps(42, opts));
    assert.notDeepEqual(generateOps(42, opts), generateOps(43, opts));
  });

  it('makes every kind of write a real cluster sees, bursts and quiet points, and ends quiet', () => {
    const ops = generateOps(1, opts);
    const kinds = new Set(flat(ops).map((o) => (o.kind === 'register' ? `register:${o.why}` : o.kind === 'deregister' ? `deregister:${o.why}` : o.kind)));
    for (const k of ['register:new', 'register:move', 'register:retag', 'deregister:one', 'deregister:last-of-service', 'check', 'maintenance', 'node-join', 'node-fail', 'node-recover', 'node-leave', 'node-readdress', 'txn', 'kv', 'coordinate', 'quiet']) {
      assert.ok(kinds.has(k), k);
    }
    assert.ok(ops.some((o) => o.kind === 'burst'));
    assert.equal(ops.at(-1)!.kind, 'quiet');
    const writes = flat(ops).filter((o) => o.kind !== 'quiet').length;
    assert.ok(writes >= 3000 && writes < 3010, `${writes} writes`);
    // maintenance only through the agent (the agent's own instances)
    const agentIds = new Set(flat(ops).filter((o) => o.kind === 'register' && o.node === 'agent').map((o) => (o as { id: string }).id));
    for (const o of flat(ops)) if (o.kind === 'maintenance') assert.ok(agentIds.has(o.id), o.id);
  });

  it('never gives two live instances of one service the same port (a duplicate is one server: another test)', () => {
    const live = new Map<string, { service: string; port: number }>();
    for (const o of flat(generateOps(7, opts))) {
      if (o.kind === 'register') live.set(`${o.node}/${o.id}`, { service: o.service, port: o.port });
      if (o.kind === 'txn') for (const x of o.sets) live.set(`${x.node}/${x.id}`, { service: x.service, port: x.port });
      if (o.kind === 'deregister') live.delete(`${o.node}/${o.id}`);
      if (o.kind === 'node-leave') for (const k of [...live.keys()]) if (k.startsWith(`${o.node}/`)) live.delete(k);
      const seen = new Set<string>();
      for (const v of live.values()) {
        const k = `${v.service}:${v.port}`;
        assert.ok(!seen.has(k), k);
        seen.add(k);
      }
    }
  });

  it('describes each op on one line', () => {
    for (const o of generateOps(3, { ...opts, ops: 200 })) assert.doesNotMatch(describeOp(o), /\n/);
  });
});

describe('shrinkOps (ddmin)', () => {
  it('shrinks to the two ops that together fail', async () => {
    const ops = generateOps(5, { prefix: 'tx', agentNode: 'agent', ops: 200 }).filter((o) => o.kind !== 'quiet' && o.kind !== 'burst');
    const a = ops[17];
    const b = ops[ops.length - 20];
    let calls = 0;
    const shrunk = await shrinkOps(ops, async (c) => {
      calls++;
      return c.includes(a) && c.includes(b);
    }, 500);
    assert.deepEqual(shrunk, [a, b]);
    assert.ok(calls < 200, `${calls} calls`);
  });

  it('stops at its budget with what it has', async () => {
    const ops = generateOps(5, { prefix: 'tx', agentNode: 'agent', ops: 200 }).filter((o) => o.kind !== 'quiet');
    let calls = 0;
    const shrunk = await shrinkOps(ops, async () => (calls++, true), 3);
    assert.equal(calls, 3);
    assert.ok(shrunk.length < ops.length);
  });
});

describe('diffRouting', () => {
  it('is empty when equal and names missing and extra servers and upstreams otherwise', () => {
    const e = new Map([['a', ['1.1.1.1:1', '2.2.2.2:2']], ['b', []]]);
    assert.deepEqual(diffRouting(e, new Map([['a', ['1.1.1.1:1', '2.2.2.2:2']], ['b', []]])), []);
    assert.deepEqual(diffRouting(e, new Map([['a', ['1.1.1.1:1', '3.3.3.3:3']], ['c', ['4.4.4.4:4']]])), [
      'a: missing [2.2.2.2:2] extra [3.3.3.3:3]',
      'b: in the catalog (no server), not in the table',
      'c: in the table (4.4.4.4:4), not in the catalog',
    ]);
  });
});
