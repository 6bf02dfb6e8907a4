// What holds on HTTP/1.1 holds on an h2 stream too, compared in one test across both protocols: request
// scripts (onRequest refuses a method with 403, adds a header that reaches the upstream, onResponse adds
// a response header), over h2c with prior knowledge against the same worker runtime; a table swap
// mid-stream (a long bidirectional gRPC call keeps its server after that server left the table, new
// calls use the new table); canary and sticky policy decided per stream (header, draw cookie, sticky
// cookie sent as HTTP/2 cookie crumbs), checked with the same requests over HTTP/1.1 and h2, and per
// gRPC call on one channel.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ClientHttp2Session } from 'node:http2';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { RouteTable, ServerSpec, TrafficPolicy } from '../../balancer/src/routing/types.js';
import { checkScript } from '../../balancer/src/scripts/script-source.js';
import { withScripts } from '../../balancer/src/scripts/table-scripts.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { h2connect, h2request } from '../support/http2-client.js';
import { Metadata } from '@grpc/grpc-js';
import { echoClient, startEchoServer, unary, type EchoClient, type EchoReply, type EchoServer } from '../support/grpc-echo.js';

const example = (name: string) => readFileSync(new URL(`../../../examples/scripts/${name}`, import.meta.url), 'utf8');

describe('balancer proxy: HTTP/1.1 behaviour stays true on h2', () => {
  let backends: Backend[];
  let proxy: RunningProxy;
  let base: RouteTable;
  let session: ClientHttp2Session;

  before(async () => {
    backends = await startBackends(2);
    proxy = await startProxy({ http2: { h2c: true } });
    base = tableFromUpstreams({ web: upstreamSpec('web', [backends[0].spec()]), 'web-b': upstreamSpec('web-b', [backends[1].spec()]) }, []);
    session = await h2connect(`http://127.0.0.1:${proxy.port}`);
  });
  after(async () => {
    session.close();
    await proxy.runtime.close();
    for (const b of backends) await b.kill();
  });

  it('scripts: onRequest and onResponse see the same request on h2 as on HTTP/1.1', async () => {
    proxy.runtime.applyTable(withScripts(base, [
      checkScript({ name: 'refuse', source: example('refuse-delete.js').replace('shop.example', 'web'), services: ['*'] }),
      checkScript({ name: 'add-header', source: example('add-header.js'), services: ['web'] }),
    ]));
    const h1 = {
      refused: await proxy.fetch('web', '/x', { method: 'DELETE' }),
      passed: await proxy.fetch('web-b', '/x', { method: 'DELETE' }),
      headers: await proxy.fetch('web', '/headers'),
    };
    const h2 = {
      refused: await h2request(session, { ':method': 'DELETE', ':path': '/x', ':authority': 'web' }),
      passed: await h2request(session, { ':method': 'DELETE', ':path': '/x', ':authority': 'web-b' }),
      headers: await h2request(session, { ':path': '/headers', ':authority': 'web' }),
    };
    for (const [proto, got] of [['HTTP/1.1', h1], ['h2', h2]] as const) {
      assert.equal(got.refused.status, 403, `${proto}: DELETE refused by onRequest`);
      assert.equal(got.refused.text, 'DELETE is not allowed here\n', proto);
      assert.equal(got.passed.status, 200, `${proto}: another host is not refused`);
      assert.equal(got.passed.text, 'b1', proto);
      const seen = JSON.parse(got.headers.text) as Record<string, string>;
      assert.equal(seen['x-request-script'], 'add-header', `${proto}: the header onRequest added reaches the upstream`);
      assert.equal(seen['x-client-address'], '127.0.0.1', proto);
      assert.equal(got.headers.headers['x-served-by'], 'balancer', `${proto}: onResponse added its header`);
      assert.equal(got.headers.headers['x-upstream-status'], '200', proto);
    }
  });
});

describe('balancer proxy: a table swap mid-stream on h2', () => {
  let servers: EchoServer[];
  let proxy: RunningProxy;
  let client: EchoClient;
  const table = (echo: EchoServer[]) => tableFromUpstreams({ echo: upstreamSpec('echo', echo.map((s) => s.spec()), { protocol: 'grpc' }) }, []);

  before(async () => {
    servers = await Promise.all(['g0', 'g1'].map((id) => startEchoServer(id)));
    proxy = await startProxy({ http2: { h2c: true } });
    proxy.runtime.applyTable(table(servers));
    client = echoClient(proxy.port, 'echo');
  });
  after(async () => {
    client.close();
    await proxy.runtime.close();
    for (const s of servers) s.kill();
  });

  it('a long gRPC call keeps its server when the table drops it; new calls use the new table', async () => {
    // deadlines on every call: a broken implementation fails here in bounded time instead of hanging
    // (grpc-js ends a call past its deadline with DEADLINE_EXCEEDED on its own)
    const deadline = () => Date.now() + 5_000;
    const bidi = client.Bidi(new Metadata(), { deadline: Date.now() + 15_000 });
    // the call's end (status) is remembered: a call that ended while no answer was awaited fails the
    // next wait at once instead of leaving it hanging (grpc-js drops the deadline once a status came)
    let status: { code: number; details: string } | undefined;
    const ended = new Promise<{ code: number; details: string }>((resolve) => bidi.once('status', (s: { code: number; details: string }) => { status = s; resolve(s); }));
    bidi.on('error', () => undefined); // the status says it
    const next = () => new Promise<EchoReply>((resolve, reject) => {
      if (status !== undefined) { reject(new Error(`the call had ended: ${status.code} ${status.details}`)); return; }
      bidi.once('data', resolve);
      void ended.then((s) => reject(new Error(`the call ended: ${s.code} ${s.details}`)));
    });
    const say = async (text: string) => { const answer = next(); bidi.write({ text }); return answer; };
    const first = await say('m1');
    const kept = servers.find((s) => s.id === first.server)!;
    const other = servers.find((s) => s !== kept)!;
    proxy.runtime.applyTable(table([other]));
    const fresh = await Promise.all(Array.from({ length: 4 }, (_, i) => unary(client, { text: `new${i}` }, { deadline: deadline() })));
    assert.deepEqual(fresh.map((r) => r.server), Array(4).fill(other.id), 'new calls use the new table');
    const later: EchoReply[] = [];
    for (let i = 2; i <= 6; i++) later.push(await say(`m${i}`));
    assert.deepEqual(later.map((r) => `${r.server}/${r.text}/${r.n}`), [2, 3, 4, 5, 6].map((i) => `${kept.id}/m${i}/${i}`), 'the open call kept its server');
    bidi.end();
    const end = await ended;
    assert.equal(end.code, 0, `the open call ends OK (${end.details})`);
  });
});

describe('balancer proxy: canary and sticky policy per h2 stream, as on HTTP/1.1', () => {
  const policy: TrafficPolicy = {
    canary: { tag: 'canary', weight: 50, header: 'x-canary', bucketCookie: 'cbucket' },
    sticky: { mode: 'cookie', name: 'sid', ttlSeconds: 600, secure: false, httpOnly: true },
  };
  let backends: Backend[];
  let echo: EchoServer[];
  let proxy: RunningProxy;
  let session: ClientHttp2Session;
  let grpcClient: EchoClient;

  before(async () => {
    backends = await startBackends(2, 's');
    backends.push(...await startBackends(1, 'c'));
    echo = await Promise.all(['gs0', 'gs1', 'gc0'].map((id) => startEchoServer(id)));
    proxy = await startProxy({ http2: { h2c: true }, stickySecret: 'h2-stays-true' });
    const marked = <T extends { id: string; spec(): ServerSpec }>(s: T) => ({ ...s.spec(), ...(s.id.startsWith('c') || s.id.startsWith('gc') ? { canary: true } : {}) });
    proxy.runtime.applyTable(tableFromUpstreams({
      web: upstreamSpec('web', backends.map(marked), { policy }),
      echo: upstreamSpec('echo', echo.map(marked), { protocol: 'grpc', policy: { canary: policy.canary } }),
    }, []));
    session = await h2connect(`http://127.0.0.1:${proxy.port}`);
    grpcClient = echoClient(proxy.port, 'echo');
  });
  after(async () => {
    grpcClient.close();
    session.close();
    await proxy.runtime.close();
    for (const b of backends) await b.kill();
    for (const s of echo) s.kill();
  });

  interface Answer { body: string; setCookie: string[] }
  const setCookies = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  // the same request both ways; cookies are crumbs: one Cookie header on HTTP/1.1, one field per crumb on h2
  // (RFC 9113 section 8.2.3), the sticky one first
  const ask: Record<'HTTP/1.1' | 'h2', (headers: Record<string, string>, crumbs: string[]) => Promise<Answer>> = {
    'HTTP/1.1': async (headers, crumbs) => {
      const r = await proxy.fetch('web', '/', { headers: { ...headers, ...(crumbs.length > 0 ? { cookie: crumbs.join('; ') } : {}) } });
      assert.equal(r.status, 200);
      return { body: r.text, setCookie: setCookies(r.headers['set-cookie']) };
    },
    h2: async (headers, crumbs) => {
      const r = await h2request(session, { ':path': '/', ':authority': 'web', ...headers, ...(crumbs.length > 0 ? { cookie: crumbs } : {}) });
      assert.equal(r.status, 200);
      return { body: r.text, setCookie: setCookies(r.headers['set-cookie']) };
    },
  };
  const cookieNamed = (a: Answer, name: string) => a.setCookie.find((c) => c.startsWith(`${name}=`))?.split(';')[0];

  it('each stream on one h2 session is routed by its own header and cookies, the same way as HTTP/1.1', async () => {
    for (const proto of ['HTTP/1.1', 'h2'] as const) {
      const get = ask[proto];
      const served = async (n: number, headers: Record<string, string>, crumbs: string[] = []) => {
        const seen = new Set<string>();
        for (let i = 0; i < n; i++) seen.add((await get(headers, crumbs)).body);
        return [...seen].sort();
      };
      assert.deepEqual(await served(6, { 'x-canary': 'always' }), ['c0'], `${proto}: the header forces the canary`);
      assert.deepEqual(await served(6, {}, ['cbucket=9999']), ['s0', 's1'], `${proto}: a stable draw spreads over the stable servers`);
      assert.deepEqual(await served(6, {}, ['cbucket=0']), ['c0'], `${proto}: a canary draw stays in the canary`);
      // a client without a draw gets one in a cookie, and the server of its group
      for (let i = 0; i < 6; i++) {
        const fresh = await get({}, []);
        const draw = cookieNamed(fresh, 'cbucket');
        assert.ok(draw, `${proto}: a draw is set: ${fresh.setCookie.join(' | ')}`);
        assert.equal(fresh.body.startsWith('c'), Number(draw.split('=')[1]) < 5000, `${proto}: ${draw} served by ${fresh.body}`);
      }
      // sticky: the first answer names its server in a cookie, later streams with it stay there
      const first = await get({}, ['cbucket=9999']);
      const sid = cookieNamed(first, 'sid');
      assert.ok(sid, `${proto}: sticky cookie set: ${first.setCookie.join(' | ')}`);
      for (let i = 0; i < 6; i++) {
        const again = await get({}, [sid, 'cbucket=9999']);
        assert.equal(again.body, first.body, `${proto}: stream ${i} sticks to ${first.body}`);
        assert.deepEqual(again.setCookie, [], `${proto}: no new cookie while the server holds`);
      }
      // the sticky cookie never crosses into the canary group: a forced canary stream re-picks and re-sets
      const crossed = await get({ 'x-canary': 'always' }, [sid, 'cbucket=9999']);
      assert.equal(crossed.body, 'c0', proto);
      assert.ok(cookieNamed(crossed, 'sid') !== undefined && cookieNamed(crossed, 'sid') !== sid, `${proto}: a new sticky cookie: ${crossed.setCookie.join(' | ')}`);
    }
  });

  it('gRPC: canary metadata routes each call on one channel', async () => {
    const call = (canary: 'always' | 'never') => {
      const md = new Metadata();
      md.set('x-canary', canary);
      return new Promise<EchoReply>((resolve, reject) => grpcClient.Unary({ text: canary }, md, { deadline: Date.now() + 5_000 }, (err, res) => (err ? reject(err) : resolve(res!))));
    };
    const order: ('always' | 'never')[] = ['always', 'never', 'never', 'always', 'never', 'always', 'never', 'always'];
    const replies = await Promise.all(order.map(call));
    assert.deepEqual(replies.map((r) => r.server.startsWith('gc')), order.map((c) => c === 'always'), replies.map((r) => r.server).join(','));
    assert.deepEqual([...new Set(replies.filter((r) => !r.server.startsWith('gc')).map((r) => r.server))].sort(), ['gs0', 'gs1'], 'stable calls spread per call');
  });
});
