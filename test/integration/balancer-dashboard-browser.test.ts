// The live dashboard in a real browser (Debian's chromium driven by playwright-core) against a
// running balancer and the Consul double (or a real agent): with a token set the page asks for it;
// it lists the services; a newly registered instance's row appears within 2 s without a reload;
// failing its check changes its health cell; a Consul outage is said on the page while the table
// stays; a service with a canary-tagged instance shows its split and each server's group; a TCP
// service (proto=tcp, deny=) shows its port, its relayed and refused connections, bytes and its
// denied count. A screenshot is saved under the test output directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { chromium } from 'playwright-core';
import { request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulPut } from '../support/consul-http.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { startNamedBackend } from '../support/http-backend.js';
import net from 'node:net';
import { freePort } from '../support/free-port.js';
import { until, untilRetryingErrors } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUTPUT_DIR = process.env.TEST_OUTPUT_DIR ?? path.resolve('.tmp/test-output');
const scope = testScope();
const SERVICE = scope.name('web');
const SHOP = scope.name('shop');
const DB = scope.name('db');

/** A TCP connection from `from` sending "ping": its echo, or 'closed'. */
function ping(from: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let text = '';
    s.setEncoding('utf8');
    s.setTimeout(5000, () => s.destroy());
    s.on('data', (d: string) => { text += d; if (text === 'ping') s.end(); });
    s.on('error', () => undefined);
    s.on('close', () => resolve(text === 'ping' ? 'ping' : 'closed'));
    s.write('ping');
  });
}
const TOKEN = 'dashboard-test-token';
const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const register = (c: ConsulTarget, id: string, port: number) => consulPut(c, '/v1/agent/service/register', {
  ID: id, Name: SERVICE, Address: '127.0.0.1', Port: port, Check: { CheckID: `service:${id}`, TTL: '10m', Status: 'passing' },
});

test('dashboard: asks for the token, lists services, shows a new instance within 2 s and its failing check, says when Consul is down', { timeout: 90_000 }, async () => {
  const consul = await consulForTest();
  const a = await startNamedBackend('ok');
  const b = await startNamedBackend('ok');
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'dashboard-chromium-'));
  const echo = net.createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const tcpPort = await freePort();
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined;
  try {
    await register(consul, scope.id('a'), a.port);
    // a canary split from tags: 20 % of clients to the instance tagged "canary", sticky by cookie
    const policyTags = ['canary_weight=20', 'canary_header=X-Canary', 'sticky=cookie'];
    await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('shop-stable'), Name: SHOP, Address: '127.0.0.1', Port: a.port, Tags: policyTags });
    await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('shop-canary'), Name: SHOP, Address: '127.0.0.1', Port: b.port, Tags: [...policyTags, 'canary'] });
    // a TCP service that denies 127.0.0.3
    await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('db'), Name: DB, Address: '127.0.0.1', Port: (echo.address() as net.AddressInfo).port, Tags: ['proto=tcp', `urlprefix-:${tcpPort}`, 'deny=ip:127.0.0.3'] });
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
      '--consul-wait', '1s', '--log-level', 'warn', '--admin-token', TOKEN, '--tcp-ports', String(tcpPort)]), logger);
    await untilRetryingErrors('tcp port open', async () => (await ping('127.0.0.2', tcpPort)) === 'ping', 8000, 50);
    // the connections before the port opened were refused by the OS, not counted; one more relayed, one denied
    assert.equal(await ping('127.0.0.2', tcpPort), 'ping');
    assert.equal(await ping('127.0.0.3', tcpPort), 'closed');
    const admin = `http://127.0.0.1:${primary.admin.port}`;
    for (let i = 0; i < 20; i++) {
      const r: Awaited<ReturnType<typeof request>> = await request(`http://127.0.0.1:${primary.proxy.port}/`, { headers: { host: SERVICE }, signal: AbortSignal.timeout(5000) });
      await r.body.text();
      assert.equal(r.statusCode, 200);
    }

    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, viewport: { width: 1280, height: 720 },
    });
    const page = context.pages()[0] ?? await context.newPage();
    await page.goto(`${admin}/`);
    // the token is asked for: no data without it
    await page.locator('#login').waitFor({ state: 'visible', timeout: 10_000 });
    assert.equal(await page.locator(`[data-service="${SERVICE}"]`).count(), 0);
    await page.fill('#token', TOKEN);
    await page.click('#login button[type=submit]');
    await page.locator(`[data-service="${SERVICE}"]`).waitFor({ state: 'visible', timeout: 10_000 });
    assert.ok(!page.url().includes(TOKEN), 'the token is never in the URL');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('balancerAdminToken')), TOKEN);
    await page.locator(`tr[data-server="${SERVICE}/127.0.0.1:${a.port}"] td.health[data-health="up"]`).waitFor({ timeout: 5000 });
    // canary/sticky state: the policy badges and each server's group
    const shop = page.locator(`[data-service="${SHOP}"]`);
    await shop.locator('[data-policy="canary"]').waitFor({ timeout: 5000 });
    assert.match(await shop.locator('[data-policy="canary"]').innerText(), /canary 20%, header x-canary \(tag canary\)/);
    assert.match(await shop.locator('[data-policy="sticky"]').innerText(), /sticky cookie lb_srv/);
    assert.equal(await shop.locator('[data-policy="panic"]').getAttribute('data-panicking'), 'no');
    assert.equal(await page.locator(`tr[data-server="${SHOP}/127.0.0.1:${b.port}"] td[data-group]`).getAttribute('data-group'), 'canary');
    assert.equal(await page.locator(`tr[data-server="${SHOP}/127.0.0.1:${a.port}"] td[data-group]`).getAttribute('data-group'), 'stable');
    assert.equal(await page.locator(`[data-service="${SERVICE}"] td[data-group]`).count(), 0, 'no group column without a canary');
    // the TCP service: its port, connection figures and the denied count (live figures: waited for)
    const db = page.locator(`[data-service="${DB}"]`);
    await db.locator('[data-tcp="listen"]').waitFor({ timeout: 5000 });
    assert.equal(await db.locator('[data-tcp="listen"]').innerText(), `tcp :${tcpPort}`);
    await until('TCP figures on the page', async () => /relayed 2 · refused 1 · in 8 B · out 8 B · connect errors 0/.test(await db.locator('[data-tcp="figures"]').innerText()), 10_000);
    await until('denied count on the page', async () => (await db.locator('[data-refused="denied"]').innerText()) === 'denied 1', 10_000);
    assert.equal(await db.locator('[data-refused="limited"]').innerText(), 'rate-limited 0');
    assert.equal(await page.locator(`[data-service="${SERVICE}"] [data-edge]`).count(), 0, 'no edge row for an HTTP service without rules');
    await page.evaluate(() => { (window as unknown as { marker: number }).marker = 42; });

    // a new instance: its row appears within 2 s, without a reload (the marker survives)
    const t0 = Date.now();
    await register(consul, scope.id('b'), b.port);
    const row = `tr[data-server="${SERVICE}/127.0.0.1:${b.port}"]`;
    await page.locator(row).waitFor({ state: 'visible', timeout: 2000 });
    const appearedMs = Date.now() - t0;
    assert.ok(appearedMs <= 2000, `row appeared after ${appearedMs} ms`);
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'no page reload');
    await page.locator(`${row} td.health[data-health="up"]`).waitFor({ timeout: 5000 });

    // its check fails: the row stays and its health cell says so
    await consulPut(consul, `/v1/agent/check/fail/${encodeURIComponent(`service:${scope.id('b')}`)}?note=boom`);
    await page.locator(`${row} td.health[data-health="failing"]`).waitFor({ timeout: 5000 });
    assert.match(await page.locator(`${row} td.health`).innerText(), /critical/);

    await mkdir(OUTPUT_DIR, { recursive: true });
    const shot = path.join(OUTPUT_DIR, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok((await stat(shot)).size > 10_000, 'screenshot written and not empty');

    // Consul unreachable: the page says so and keeps the services it had
    await consul.outage();
    await page.locator('#consul', { hasText: 'consul unreachable' }).waitFor({ timeout: 15_000 });
    await page.locator('#banner', { hasText: 'Consul is unreachable' }).waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await page.locator(`[data-service="${SERVICE}"]`).count(), 1);
    await consul.restore();
    await page.locator('#consul', { hasText: 'consul reachable' }).waitFor({ timeout: 15_000 });

    // a wrong token is refused and asked for again
    await page.evaluate(() => sessionStorage.setItem('balancerAdminToken', 'wrong'));
    await page.reload();
    await page.locator('#login').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.locator('#login-error').innerText(), /refused/);
  } finally {
    await context?.close().catch(() => undefined);
    await primary?.stop();
    a.server.close();
    b.server.close();
    echo.close();
    await scope.clean(consul);
    await consul.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
});
