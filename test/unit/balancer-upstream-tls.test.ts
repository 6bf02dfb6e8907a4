// proto=h2 upstream TLS, the pure parts: the connection options from a server address, the service's
// tls_server_name= / tls_skip_verify= and --upstream-ca; the pool key; --upstream-ca read at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseBalancerArgs } from '../../balancer/src/config.js';
import { withUpstreamCa } from '../../balancer/src/proxy/http2/upstream-ca.js';
import { isCertificateError, upstreamTlsKey, upstreamTlsOptions } from '../../balancer/src/proxy/http2/upstream-tls.js';
import { makeTestCa } from '../support/tls-certs.js';

test('connection options: verify by default, the address or tls_server_name as the name, the CA when given', () => {
  const cases: [string, Parameters<typeof upstreamTlsOptions>, ReturnType<typeof upstreamTlsOptions>][] = [
    ['IP: no SNI, the IP checked', ['10.0.0.1', undefined, undefined], { ALPNProtocols: ['h2'], rejectUnauthorized: true }],
    ['DNS name: SNI and name', ['api.internal', undefined, undefined], { ALPNProtocols: ['h2'], rejectUnauthorized: true, servername: 'api.internal' }],
    ['tls_server_name wins', ['10.0.0.1', { serverName: 'api.internal' }, 'PEM'], { ALPNProtocols: ['h2'], rejectUnauthorized: true, servername: 'api.internal', ca: 'PEM' }],
    ['tls_skip_verify', ['10.0.0.1', { skipVerify: true }, 'PEM'], { ALPNProtocols: ['h2'], rejectUnauthorized: false, ca: 'PEM' }],
  ];
  for (const [what, args, want] of cases) assert.deepEqual(upstreamTlsOptions(...args), want, what);
  assert.notEqual(upstreamTlsKey(undefined), upstreamTlsKey({ skipVerify: true }));
  assert.notEqual(upstreamTlsKey(undefined), upstreamTlsKey({ serverName: 'a' }));
  assert.equal(upstreamTlsKey(undefined), upstreamTlsKey({}));
  assert.ok(isCertificateError({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' }));
  assert.ok(isCertificateError({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }));
  assert.ok(!isCertificateError({ code: 'ECONNREFUSED' }));
});

test('--upstream-ca: read at start; an unreadable file or one without a certificate stops the start naming it', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'upstream-ca-'));
  const ca = await makeTestCa('upstream-ca');
  try {
    const config = (file: string) => {
      const c = parseBalancerArgs(['--no-consul', '--upstream-ca', file], {}, { cores: 1 });
      if (c.kind !== 'config') throw new Error(JSON.stringify(c));
      return c;
    };
    const good = await withUpstreamCa(config(ca.certPath));
    assert.equal(good.http2.upstreamCa, ca.cert);
    await writeFile(path.join(dir, 'empty.pem'), 'nothing here');
    await assert.rejects(withUpstreamCa(config(path.join(dir, 'empty.pem'))), (e: Error & { code?: string }) => e.code === 'ERR_UPSTREAM_CA' && /--upstream-ca .*empty\.pem: no PEM certificate/.test(e.message));
    await assert.rejects(withUpstreamCa(config(path.join(dir, 'missing.pem'))), (e: Error & { code?: string }) => e.code === 'ERR_UPSTREAM_CA' && /missing\.pem/.test(e.message));
    const none = parseBalancerArgs(['--no-consul'], {}, { cores: 1 });
    assert.ok(none.kind === 'config' && none.http2.upstreamCaFile === undefined);
  } finally {
    await ca.close();
    await rm(dir, { recursive: true, force: true });
  }
});
