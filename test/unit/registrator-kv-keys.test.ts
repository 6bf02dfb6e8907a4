// KV keys only of characters every Consul version accepts ([a-zA-Z0-9,_./-?&=], Consul 1.21.5's rule):
// the presence key registrator/instances/<engine>/<marker> carries an old engine's ID ("ABCD:EFGH:...")
// and a host name, so each segment is encoded (kv-key.ts); -cleanup still reads the records earlier
// versions wrote under the raw segments. The real backend against the double (or a real agent).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConsulRegistry, PRESENCE_PREFIX } from '../../registrator/src/registry/consul-backend.js';
import { decodeKeySegment, encodeKeySegment, STRICT_KEY } from '../../registrator/src/registry/kv-key.js';
import type { ServiceRecord } from '../../registrator/src/mapping/types.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';

test('key segments: a table, and every code point below U+0300 (and an astral one) round-trips into the strict set', () => {
  const table: Array<[string, string]> = [
    ['ABCD:EFGH:IJKL:MNOP', 'ABCD=3AEFGH=3AIJKL=3AMNOP'],
    ['3f2a4c1e-7b1d-4c2e-9f00-0123456789ab', '3f2a4c1e-7b1d-4c2e-9f00-0123456789ab'],
    ['web-1.example.com', 'web-1.example.com'],
    ['a_b,c', 'a_b,c'],
    ['a=b', 'a=3Db'],
    ['a/b', 'a=2Fb'],
    ['x?y&z', 'x=3Fy=26z'],
    ['has space', 'has=20space'],
    ['.', '=2E'],
    ['..', '=2E=2E'],
    ['.hidden', '.hidden'],
    ['é', '=C3=A9'],
  ];
  for (const [raw, enc] of table) {
    assert.equal(encodeKeySegment(raw), enc, raw);
    assert.equal(decodeKeySegment(enc), raw, enc);
  }
  const samples = [...Array.from({ length: 0x300 }, (_, c) => String.fromCodePoint(c)), '😀'];
  for (const ch of samples) {
    const text = `a${ch}b`;
    const enc = encodeKeySegment(text);
    assert.match(enc, STRICT_KEY, JSON.stringify(text));
    assert.ok(!enc.includes('/') && !enc.includes('?') && !enc.includes('&'), JSON.stringify(enc));
    assert.equal(decodeKeySegment(enc), text);
  }
  assert.equal(decodeKeySegment('a=3a'), undefined, 'lower-case hex is not ours');
  assert.equal(decodeKeySegment('a:b'), undefined);
});

const runTag = `kk${process.pid}x${Date.now().toString(36)}`;
const engineId = `ABCD:EFGH:${runTag.toUpperCase()}`;

describe('presence keys on the agent', () => {
  let consul: ConsulTarget;
  const registries: ConsulRegistry[] = [];

  before(async () => {
    consul = await consulForTest();
  });

  after(async () => {
    for (const r of registries) r.close();
    await cleanConsul(consul, `${runTag}-`).catch(() => undefined);
    for (const p of [`${PRESENCE_PREFIX}${encodeKeySegment(engineId)}`, `${PRESENCE_PREFIX}${engineId}`]) {
      await fetch(`${consul.url}/v1/kv/${encodeURI(p)}?recurse`, { method: 'DELETE' }).catch(() => undefined);
    }
    await consul.close();
  });

  const registry = (marker: string) => {
    const r = new ConsulRegistry({ host: consul.host, port: consul.port, secure: false, instanceMarker: marker, engineId, adoptSameEngine: true, callTimeoutMs: 3000, presenceIntervalMs: 1000 });
    registries.push(r);
    return r;
  };
  const keys = async (): Promise<string[]> => {
    const res = await fetch(`${consul.url}/v1/kv/${PRESENCE_PREFIX}?keys`, { signal: AbortSignal.timeout(3000) });
    return res.status === 404 ? [] : ((await res.json()) as string[]);
  };
  const record = (marker: string): ServiceRecord => ({
    id: `${runTag}-${marker}:web:80`, name: `${runTag}-web`, address: '127.0.0.1', port: 8080, tags: [], meta: { 'registrator-instance': marker }, checks: [],
    containerId: `c-${marker}`, containerName: 'web', exposedPort: '80', protocol: 'tcp',
  });
  const putLegacy = async (marker: string, heartbeatAt: number) => {
    const key = `${PRESENCE_PREFIX}${engineId}/${marker}`;
    const res = await fetch(`${consul.url}/v1/kv/${encodeURI(key)}`, { method: 'PUT', body: JSON.stringify({ marker, engine: engineId, heartbeatAt, intervalMs: 1000 }), signal: AbortSignal.timeout(3000) });
    assert.equal(res.status, 200, `the legacy key could be written: ${await res.text()}`);
  };

  test('the heartbeat writes its key only with characters of the strict set', async () => {
    const marker = `${runTag}-host:with space`;
    const r = registry(marker);
    await r.heartbeat(AbortSignal.timeout(3000));
    const ours = (await keys()).filter((k) => k.includes(runTag.toUpperCase()));
    assert.deepEqual(ours, [`${PRESENCE_PREFIX}${encodeKeySegment(engineId)}/${encodeKeySegment(marker)}`]);
    for (const k of ours) assert.match(k, STRICT_KEY);
    await r.withdraw(AbortSignal.timeout(3000));
    assert.deepEqual((await keys()).filter((k) => k.includes(runTag.toUpperCase())), []);
  });

  test('-cleanup still finds an earlier version\'s raw key: live, its services are left alone; stale, they are adopted', async () => {
    const old = registry(`${runTag}-old`);
    await old.register(record(`${runTag}-old`), AbortSignal.timeout(3000));
    const fresh = registry(`${runTag}-new`);
    await fresh.heartbeat(AbortSignal.timeout(3000));

    await putLegacy(`${runTag}-old`, Date.now());
    const whileLive = (await fresh.listOurs(AbortSignal.timeout(3000))).map((s) => s.id);
    assert.ok(!whileLive.includes(`${runTag}-${runTag}-old:web:80`), `a live registrator's service is not adopted: ${whileLive.join(', ')}`);

    await putLegacy(`${runTag}-old`, Date.now() - 60_000);
    const whenStale = (await fresh.listOurs(AbortSignal.timeout(3000))).map((s) => s.id);
    assert.ok(whenStale.includes(`${runTag}-${runTag}-old:web:80`), `a gone registrator's service is adopted: ${whenStale.join(', ')}`);
  });

  test('withdraw also removes the record an earlier version of this registrator left under the raw key', async () => {
    const marker = `${runTag}-upgraded`;
    await putLegacy(marker, Date.now());
    const r = registry(marker);
    await r.heartbeat(AbortSignal.timeout(3000));
    await r.withdraw(AbortSignal.timeout(3000));
    assert.deepEqual((await keys()).filter((k) => k.includes(marker)), []);
  });
});
