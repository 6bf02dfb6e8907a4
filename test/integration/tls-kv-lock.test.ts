// The ACME order lock against Consul (the double, or the agent in CONSUL_HTTP_ADDR): check-and-set
// makes exactly one of many contenders win; an expired lock is taken over and its old holder can
// neither refresh nor release it any more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { ConsulKv } from '../../balancer/src/tls/consul-kv.js';
import { KvLock } from '../../balancer/src/tls/kv-lock.js';
import { consulForTest } from '../support/consul.js';

test('one winner among contenders; expiry frees the lock; a stale holder cannot refresh or release it', async () => {
  const consul = await consulForTest();
  const controller = new AbortController();
  const key = `lock${process.pid}/locks/name`;
  try {
    const kv = new ConsulKv({ baseUrl: consul.url }, controller.signal);
    let clock = 1_000_000;
    const now = () => clock;
    const locks = Array.from({ length: 6 }, (_, i) => new KvLock(kv, key, `inst-${i}`, 1_000, now));
    const won = await Promise.all(locks.map((l) => l.acquire()));
    assert.equal(won.filter(Boolean).length, 1, `exactly one winner: ${won.join(',')}`);
    const holder = locks[won.indexOf(true)];
    const other = locks.find((l) => l !== holder)!;
    assert.equal(await other.acquire(), false, 'busy while not expired');
    assert.equal(await holder.refresh(), true);
    clock += 1_001;
    assert.equal(await other.acquire(), true, 'taken over after expiry');
    assert.equal(await holder.refresh(), false, 'the old holder lost it');
    await holder.release();
    const v = await kv.getJson<{ holder: string }>(key);
    assert.equal(v?.value.holder, other.me, 'a stale release does not delete the new holder\'s lock');
    await other.release();
    assert.equal(await kv.get(key), undefined);
  } finally {
    controller.abort();
    await request(`${consul.url}/v1/kv/lock${process.pid}/?recurse`, { method: 'DELETE' }).then((r) => r.body.text()).catch(() => undefined);
    await consul.close();
  }
});
