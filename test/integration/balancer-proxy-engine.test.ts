// Engine contract: a transport failure always ends as a JSON 502/504 (never a hang or a crashed
// worker), and handleSocket serves sockets accepted elsewhere, such as TLS sockets of a tls.Server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

/** A throwaway self-signed certificate for 127.0.0.1 (openssl is part of the CI image). */
function selfSignedCert(): { key: string; cert: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'engine-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore', timeout: 10_000 });
    return { key: readFileSync(path.join(dir, 'key.pem'), 'utf8'), cert: readFileSync(path.join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One HTTP/1.1 request over TLS, answer read until the server closes (Connection: close). */
function tlsRequest(port: number, ca: string, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: undefined }, () => socket.write(request));
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('tls request timed out')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

for (const engine of ENGINES) describe(`balancer proxy engine contract [${engine}]`, () => {
  let backends: Backend[] = [];
  let proxy: RunningProxy;

  before(async () => {
    backends = await startBackends(1);
    proxy = await startProxy(engineOptions(engine));
  });
  after(async () => {
    await proxy.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it('a server whose host the transport refuses ends as a JSON 502 and the worker keeps serving', async () => {
    proxy.runtime.applyTable(tableFromUpstreams({
      bad: upstreamSpec('bad', [{ ...backends[0].spec(), id: 'bad host:1', host: 'bad host', port: 1 }]),
      web: upstreamSpec('web', [backends[0].spec()]),
    }, []));
    const res = await proxy.fetch('bad');
    assert.equal(res.status, 502);
    assert.equal((JSON.parse(res.text) as { error: string }).error, 'upstream_unreachable');
    assert.equal((await proxy.fetch('web')).text, 'b0');
  });

  it('serves TLS sockets handed over by a tls.Server, with X-Forwarded-Proto https and -Port', async () => {
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [backends[0].spec()]) }, []));
    const { key, cert } = selfSignedCert();
    const server = tls.createServer({ key, cert }, (socket) => proxy.runtime.handleSocket(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const answer = await tlsRequest(port, cert, 'GET /headers HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n');
      assert.match(answer, /^HTTP\/1\.1 200 /);
      const seen = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4).replace(/^[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, '')) as Record<string, string>;
      assert.equal(seen['x-forwarded-proto'], 'https');
      assert.equal(seen['x-forwarded-port'], String(port));
      assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
