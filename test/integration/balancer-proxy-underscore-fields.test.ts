// Request fields whose name has a '_' are dropped by default (nginx's underscores_in_headers off): a
// CGI/WSGI backend reads `Transfer_Encoding: chunked` beside a Content-Length as TE.CL. With
// --underscores-in-headers they are forwarded (the X_Forwarded_* spellings never are).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { withTimeout } from '../support/raw-client.js';

const REQUEST = 'POST /headers HTTP/1.1\r\nHost: web\r\nX_Custom: 1\r\nTransfer_Encoding: chunked\r\nX_Forwarded_For: 6.6.6.6\r\nX-Plain: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';

/** The request headers the backend saw (its /headers answer). */
function headersSeen(port: number): Promise<Record<string, string>> {
  return withTimeout('answer', new Promise<Record<string, string>>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('connect', () => socket.write(REQUEST, 'latin1'));
    socket.on('data', (c: Buffer) => { got += c.toString('latin1'); });
    socket.on('error', reject);
    socket.on('close', () => {
      const body = got.slice(got.indexOf('\r\n\r\n') + 4);
      try { resolve(JSON.parse(body.includes('{') ? body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1) : body) as Record<string, string>); } catch (err) { reject(new Error(`${(err as Error).message}: ${got}`)); }
    });
  }), 10_000);
}

for (const engine of ENGINES) describe(`balancer proxy: header names with "_" [${engine}]`, () => {
  let backends: Backend[];
  let dropping: RunningProxy;
  let keeping: RunningProxy;

  before(async () => {
    backends = await startBackends(1);
    dropping = await startProxy(engineOptions(engine));
    keeping = await startProxy({ ...engineOptions(engine), underscoresInHeaders: true });
    for (const p of [dropping, keeping]) p.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [backends[0].spec()]) }, []));
  });
  after(async () => {
    await dropping.runtime.close();
    await keeping.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it('drops them by default', async () => {
    const seen = await headersSeen(dropping.port);
    assert.equal(seen['x-plain'], '2');
    assert.equal(seen.x_custom, undefined);
    assert.equal(seen.transfer_encoding, undefined);
    assert.equal(seen.x_forwarded_for, undefined);
  });

  it('forwards them with --underscores-in-headers (never the X_Forwarded_* spellings)', async () => {
    const seen = await headersSeen(keeping.port);
    assert.equal(seen.x_custom, '1');
    assert.equal(seen.transfer_encoding, 'chunked');
    assert.equal(seen.x_forwarded_for, undefined);
  });
});
