// What holds on HTTP/1.1 holds on an h2 stream too, compared in one test across both protocols: request
// scripts (onRequest refuses a method with 403, adds a header that reaches the upstream, onResponse adds
// a response header), over h2c with prior knowledge against the same worker runtime; a table swap
// mid-stream (a long bidirectional gRPC call keeps its server after that server left the table, new
// calls use the new table).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ClientHttp2Session } from 'node:http2';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { RouteTable } from '../../balancer/src/routing/types.js';
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
