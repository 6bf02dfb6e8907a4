// Routing by Host and path prefix, the proxy's own 404/502 JSON bodies, header rewriting.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

for (const engine of ENGINES) describe(`balancer proxy: routing and headers [${engine}]`, () => {
  let backends: Backend[];
  let proxy: RunningProxy;

  before(async () => {
    backends = await startBackends(3);
    proxy = await startProxy(engineOptions(engine));
    proxy.runtime.applyTable(tableFromUpstreams({
      web: upstreamSpec('web', [backends[0].spec()]),
      api: upstreamSpec('api', [backends[1].spec()]),
      empty: upstreamSpec('empty', []),
      downonly: upstreamSpec('downonly', [backends[2].spec({ down: true })]),
    }, [{ host: 'shop.example', pathPrefix: '/api', upstream: 'api' }, { host: 'shop.example', pathPrefix: '/', upstream: 'web' }]));
  });
  after(async () => {
    await proxy.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it('routes by service name as Host, case-insensitive and with a port', async () => {
    assert.equal((await proxy.fetch('web')).text, 'b0');
    assert.equal((await proxy.fetch('API:8080')).text, 'b1');
  });

  it('routes explicit host + path-prefix routes, longest prefix first', async () => {
    assert.equal((await proxy.fetch('shop.example', '/api/items?x=1')).text, 'b1');
    assert.equal((await proxy.fetch('shop.example', '/index.html')).text, 'b0');
  });

  it('answers 404 JSON naming the unknown host', async () => {
    const res = await proxy.fetch('nope.example:81', '/x');
    assert.equal(res.status, 404);
    assert.equal(res.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(res.text), { error: 'unknown_host', host: 'nope.example', path: '/x' });
  });

  it('answers 502 JSON naming the service when no server can be picked', async () => {
    for (const host of ['empty', 'downonly']) {
      const res = await proxy.fetch(host);
      assert.equal(res.status, 502);
      assert.deepEqual(JSON.parse(res.text), { error: 'no_healthy_upstream', upstream: host });
    }
  });

  it('removes hop-by-hop headers, keeps Host, replaces X-Forwarded-* of an untrusted client', async () => {
    // node:http, because undici refuses to send hop-by-hop headers at all
    const text = await new Promise<string>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port: proxy.port, path: '/headers', agent: false,
        headers: {
          host: 'web:9000', connection: 'keep-alive, x-secret', 'x-secret': 'hidden', 'keep-alive': 'timeout=5', te: 'trailers',
          'proxy-authorization': 'Basic Zm9v', 'x-forwarded-for': '10.1.1.1', 'x-forwarded-proto': 'https', 'x-custom': 'kept',
        },
      }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { body += c; });
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
    const seen = JSON.parse(text) as Record<string, string>;
    assert.equal(seen.host, 'web:9000');
    assert.equal(seen['x-custom'], 'kept');
    assert.equal(seen['x-secret'], undefined);
    assert.equal(seen['keep-alive'], undefined);
    assert.equal(seen.te, undefined);
    assert.equal(seen['proxy-authorization'], undefined);
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], 'web:9000');
  });

  it('removes hop-by-hop headers from the response, including those named in Connection', async () => {
    const res = await proxy.fetch('web');
    assert.equal(res.headers['x-backend-id'], 'b0');
    assert.equal(res.headers['x-hop'], undefined);
    assert.equal(res.headers['keep-alive'] === 'timeout=30', false);
  });

  it('applying the same table version again changes nothing', async () => {
    const table = tableFromUpstreams({ web: upstreamSpec('web', [backends[0].spec()]) }, []);
    assert.equal(proxy.runtime.applyTable(table).changed, true);
    assert.equal(proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [backends[0].spec()]) }, [])).changed, false);
  });

  it('routes an absolute-form request by its authority and forwards origin-form', async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(proxy.port, '127.0.0.1');
      let got = '';
      socket.on('data', (c: Buffer) => { got += c.toString(); });
      socket.on('end', () => resolve(got));
      socket.on('error', reject);
      socket.write('GET http://web:8080/headers HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n');
    });
    assert.match(raw, /^HTTP\/1\.1 200/);
    // the body may arrive chunked: look for the JSON fields in it
    assert.ok(raw.includes('"host":"web:8080"'), raw);
    assert.ok(raw.includes('"x-forwarded-host":"web:8080"'), raw);
  });

  it('writes one access log line per request when asked to', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
    const logged = await startProxy({ ...engineOptions(engine), logger: pino({ level: 'info' }, sink), accessLog: true });
    try {
      logged.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [backends[0].spec()]) }, []));
      assert.equal((await logged.fetch('web', '/hello?x=1')).text, 'b0');
      const access = lines.filter((l) => l.component === 'access');
      assert.equal(access.length, 1);
      assert.equal(access[0].upstream, 'web');
      assert.equal(access[0].server, backends[0].spec().id);
      assert.equal(access[0].status, 200);
      assert.equal(access[0].tries, 1);
      assert.equal(typeof access[0].ms, 'number');
    } finally {
      await logged.runtime.close();
    }
  });
});
