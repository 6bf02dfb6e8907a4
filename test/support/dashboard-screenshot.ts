// Makes README's dashboard screenshot (docs/dashboard.png): a balancer (2 workers) on the Consul
// double, three services under traffic (one with a canary split and sticky cookies), a third web
// instance added and another one failing its check, then headless chromium takes the picture.
// Not a test: `npm run build && node dist/test/support/dashboard-screenshot.js [out.png]`.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import pino from 'pino';
import { chromium } from 'playwright-core';
import { Agent, request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { parseBalancerArgs } from '../../balancer/src/config.js';
import { startConsulDouble } from './consul-double/index.js';

const out = path.resolve(process.argv[2] ?? 'docs/dashboard.png');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function backend(delayMs: number): Promise<number> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => res.end('ok'), delayMs * (0.5 + Math.random())));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  server.unref();
  return (server.address() as AddressInfo).port;
}

const consul = await startConsulDouble({ host: '127.0.0.1', port: 0 });
const put = async (p: string, body?: unknown) => {
  const res = await request(`${consul.url}${p}`, { method: 'PUT', body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`PUT ${p}: ${res.statusCode}`);
};
const register = (id: string, name: string, port: number, tags: string[] = []) =>
  put('/v1/agent/service/register', { ID: id, Name: name, Address: '127.0.0.1', Port: port, Tags: tags, Check: { CheckID: `service:${id}`, TTL: '10m', Status: 'passing' } });

const shopTags = ['canary_weight=20', 'canary_header=X-Canary', 'sticky=cookie'];
await register('web-1', 'web', await backend(15));
await register('web-2', 'web', await backend(20));
await register('api-1', 'api', await backend(60), ['lb=ewma']);
await register('shop-1', 'shop', await backend(10), shopTags);
await register('shop-2', 'shop', await backend(10), shopTags);
await register('shop-canary', 'shop', await backend(25), [...shopTags, 'canary']);

const parsed = parseBalancerArgs(['--consul', `127.0.0.1:${consul.port}`, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2', '--consul-wait', '1s', '--log-level', 'warn'], {}, { cores: 2 });
if (parsed.kind !== 'config') throw new Error('bad config');
const primary = await startPrimary(parsed, pino({ level: 'warn' }));
const agent = new Agent({ connections: 16 });
let running = true;
// traffic: a few clients per service, each with its own cookie jar (sticky and canary cookies kept)
const client = async (host: string, pauseMs: number) => {
  let cookie = '';
  while (running) {
    try {
      const res = await request(`http://127.0.0.1:${primary.proxy.port}/`, { headers: { host, ...(cookie ? { cookie } : {}) }, dispatcher: agent, signal: AbortSignal.timeout(5000) });
      await res.body.text();
      const set = res.headers['set-cookie'];
      if (set) cookie = (Array.isArray(set) ? set : [set]).map((c) => c.split(';')[0]).join('; ');
    } catch { /* a demo: keep going */ }
    await sleep(pauseMs * (0.5 + Math.random()));
  }
};
const clients = [...Array.from({ length: 6 }, () => client('web', 40)), ...Array.from({ length: 3 }, () => client('api', 80)), ...Array.from({ length: 12 }, () => client('shop', 60))];

const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'dashboard-shot-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true, viewport: { width: 1360, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  await page.goto(`http://127.0.0.1:${primary.admin.port}/`);
  await sleep(20_000);
  await register('web-3', 'web', await backend(15));
  await sleep(4_000);
  await put('/v1/agent/check/fail/service:web-1?note=demo');
  await sleep(3_000);
  await page.screenshot({ path: out, fullPage: true });
  console.log(`screenshot: ${out}`);
} finally {
  running = false;
  await Promise.all(clients);
  await context.close();
  await rm(userDataDir, { recursive: true, force: true });
  await primary.stop();
  await agent.close();
  await consul.close();
}
