// Chromium (Debian's, driven by playwright-core) loads a page through the balancer's TLS listener and
// reports that it came over HTTP/2 (Navigation Timing nextHopProtocol "h2"); the listener opted out of
// h2 gives it HTTP/1.1.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { chromium } from 'playwright-core';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { certSnapshotOf, fullDelta } from '../../balancer/src/tls/cert-snapshot.js';
import { validateCertificate } from '../../balancer/src/tls/certificate.js';
import { DEFAULT_TLS_CIPHERS } from '../../balancer/src/tls/tls-settings.js';
import { WorkerTls } from '../../balancer/src/tls/worker-tls.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { makeTestCa, type TestCa } from '../support/tls-certs.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--ignore-certificate-errors'];

describe('balancer proxy: a browser over the TLS listener', () => {
  let ca: TestCa;
  let backends: Backend[];
  let proxy: RunningProxy;
  let tls: WorkerTls;
  let ports: number[];

  before(async () => {
    ca = await makeTestCa('h2browser');
    const pem = await ca.issue(['app.example.test']);
    backends = await startBackends(1);
    proxy = await startProxy();
    proxy.runtime.applyTable(tableFromUpstreams({ app: upstreamSpec('app', [backends[0].spec()]) }, [{ host: 'app.example.test', pathPrefix: '/', upstream: 'app' }]));
    tls = new WorkerTls({
      listen: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0, http1Only: true }],
      ciphers: DEFAULT_TLS_CIPHERS, minVersion: 'TLSv1.2', handshakeTimeoutMs: 5_000,
    }, pino({ level: 'silent' }));
    tls.apply(fullDelta(certSnapshotOf([validateCertificate({ id: 'kv:app', source: 'kv', chainText: pem.cert, keyText: pem.key }, Date.now())], 'app.example.test')));
    ports = (await tls.listen((socket) => proxy.runtime.handleSocket(socket))).map((a) => a.port);
  });
  after(async () => {
    tls.close();
    await proxy.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
    await ca.close();
  });

  it('Chromium negotiates h2 on the TLS listener, http/1.1 on the opted-out one', { timeout: 60_000 }, async () => {
    const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'h2-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, ignoreHTTPSErrors: true,
      args: [...CHROMIUM_FLAGS, `--host-resolver-rules=MAP app.example.test 127.0.0.1`],
    });
    try {
      const page = context.pages()[0] ?? await context.newPage();
      const protocolAt = async (port: number): Promise<{ protocol: string; text: string }> => {
        const res = await page.goto(`https://app.example.test:${port}/`);
        assert.equal(res?.status(), 200);
        return {
          protocol: await page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol),
          text: (await res?.text()) ?? '',
        };
      };
      const h2 = await protocolAt(ports[0]);
      assert.equal(h2.protocol, 'h2');
      assert.equal(h2.text, 'b0');
      const h1 = await protocolAt(ports[1]);
      assert.equal(h1.protocol, 'http/1.1');
    } finally {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    }
  });
});
