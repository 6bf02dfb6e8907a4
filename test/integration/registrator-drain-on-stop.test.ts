// Drain on stop, end to end with the real Docker engine, registrator and balancer (and the Consul double,
// or a real agent with CONSUL_HTTP_ADDR): a web container that does what the README asks (keeps serving
// for DRAIN_WINDOW_MS after SIGTERM, then exits as soon as nothing is in flight; no health-check trick),
// scaled 3 -> 1 with `docker stop` under load, gives zero failed requests, GET and POST alike. The
// registrator sees the `kill` event docker stop emits, puts the container's service into maintenance (a
// critical check), the balancer stops picking it, in-flight requests finish, the process exits, `die`
// deregisters. The gap from SIGTERM to every worker dropping the instance is printed piece by piece
// (drain-timeline.ts), a figure, not an assertion.
// Also SERVICE_WEIGHT end to end: the balancer honours the Meta weight the registrator stores.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startBalancer, type BalancerProcess } from '../support/balancer-ephemeral.js';
import { startLoadThread } from '../support/closed-loop-load.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { cleanupRun, docker, publishedPort, requireDocker, RUN_LABEL, runContainer, runId, webImage, containerName } from '../support/docker.js';
import { importNodeImage } from '../support/node-image.js';
import { balancerDropTimes, describeTimeline, registratorDrainTimes, type DrainTimeline } from '../support/drain-timeline.js';
import { spawnRegistrator, waitFor, type RegistratorProcess } from '../support/registrator-process.js';

const WAIT_MS = 20_000;
// liveness bound on a registrator process start (node, its modules, Docker's info) to its first resync:
// under a pinned busy loop at load ~17, a nice'd test's registrator printed nothing in 20 s (as the
// balancer's own start bound says, balancer-ephemeral.ts)
const START_MS = 60_000;
// liveness bound on SIGTERM -> both deregistered: the drain window, the servers' last requests, the
// `die` event, a deregistration each; on a busy CI machine (load ~20 on 2 cores) 20 s was not enough
const DEREGISTER_MS = 60_000;

// What the README asks of an application for drain on stop to hold: keep serving new requests for
// DRAIN_WINDOW_MS after SIGTERM (the time from Docker's kill event to every balancer worker dropping
// the instance), then exit once nothing is in flight.
const DRAIN_WINDOW_MS = 2_000;

// Serves every request after DELAY_MS; on SIGTERM it keeps serving what arrives (answering with
// Connection: close) for DRAIN_WINDOW_MS, then exits the moment nothing is in flight. It never fails
// a health check. It prints when the last request arrived after SIGTERM: the kill -> dropped gap.
const DRAINING_SERVER = `
const http = require('node:http');
const delay = Number(process.env.DELAY_MS || 80);
const windowMs = Number(process.env.DRAIN_WINDOW_MS || 0);
let inFlight = 0;
let stopping = false;
let windowOver = false;
let stopAt = 0;
let servedAfterStop = 0;
let lastArrival = -1;
const exitIfIdle = () => {
  if (!stopping || !windowOver || inFlight > 0) return;
  console.log('exit ' + (Date.now() - stopAt) + ' ms after SIGTERM, ' + servedAfterStop + ' requests arrived meanwhile, the last ' + lastArrival + ' ms after SIGTERM');
  process.exit(0);
};
const server = http.createServer((req, res) => {
  inFlight++;
  if (stopping) { servedAfterStop++; lastArrival = Date.now() - stopAt; }
  let size = 0;
  req.on('data', (c) => { size += c.length; });
  req.on('end', () => setTimeout(() => {
    if (stopping) res.setHeader('connection', 'close');
    res.setHeader('content-type', 'text/plain');
    res.end(process.env.NAME + ' ' + req.method + ' ' + size + '\\n');
  }, delay));
  res.on('close', () => { inFlight--; exitIfIdle(); });
});
server.keepAliveTimeout = 30000;
process.on('SIGTERM', () => {
  stopping = true;
  stopAt = Date.now();
  console.log('SIGTERM at ' + stopAt + ' with ' + inFlight + ' in flight');
  setTimeout(() => { windowOver = true; exitIfIdle(); }, windowMs);
});
server.listen(80);
`;

describe('drain on stop with Docker, registrator and balancer', { timeout: 240_000 }, () => {
  let consul: ConsulTarget;
  let nodeImage: string;
  let scriptDir: string;
  const registrators: RegistratorProcess[] = [];
  const balancers: BalancerProcess[] = [];
  const hostPrefix = `h-${runId}-drain`;

  before(async () => {
    await requireDocker();
    consul = await consulForTest();
    scriptDir = await fs.mkdtemp(path.join(os.tmpdir(), 'cbtest-drain-'));
    await fs.writeFile(path.join(scriptDir, 'server.cjs'), DRAINING_SERVER);
    await fs.chmod(scriptDir, 0o755);
    nodeImage = `cbtest/drain-node:${runId}-${createHash('sha256').update(process.execPath).digest('hex').slice(0, 8)}`;
    await importNodeImage({ tag: nodeImage, labels: { [RUN_LABEL]: runId }, signal: AbortSignal.timeout(180_000) });
    await webImage();
  });

  after(async () => {
    await Promise.all(registrators.map((r) => r.stop()));
    await Promise.all(balancers.map((b) => b.stop()));
    await cleanupRun();
    if (nodeImage) await docker(['rmi', '-f', nodeImage], { allowFailure: true });
    if (scriptDir) await fs.rm(scriptDir, { recursive: true, force: true });
    if (consul) {
      await cleanConsul(consul, hostPrefix).catch(() => undefined);
      await consul.close();
    }
  });

  async function drainingWeb(name: string, service: string): Promise<{ id: string; name: string }> {
    const cname = containerName(name);
    const id = await docker([
      'run', '-d', '--name', cname, '--label', `${RUN_LABEL}=${runId}`,
      '-p', '127.0.0.1::80', '-e', `SERVICE_NAME=${service}`, '-e', `NAME=${name}`, '-e', 'DELAY_MS=250', '-e', `DRAIN_WINDOW_MS=${DRAIN_WINDOW_MS}`,
      '-v', `${path.join(scriptDir, 'server.cjs')}:/app/server.cjs:ro`,
      nodeImage, 'node', '/app/server.cjs',
    ]);
    return { id, name: cname };
  }

  async function routable(proxyPort: number, host: string, servers: number): Promise<void> {
    await waitFor(`${servers} servers behind ${host}`, async () => {
      const seen = new Set<string>();
      for (let i = 0; i < servers * 6; i++) {
        const res = await request(`http://127.0.0.1:${proxyPort}/`, { headers: { host } });
        const text = await res.body.text();
        if (res.statusCode === 200) seen.add(text.split(' ')[0]);
      }
      return seen.size === servers ? true : undefined;
    }, WAIT_MS, 200);
  }

  async function scaleDownUnderLoad(drain: boolean) {
    const hostname = `${hostPrefix}-${drain ? 'on' : 'off'}`;
    const service = `drainweb-${runId}-${drain ? 'on' : 'off'}`;
    // -internal: the balancer talks to the container IP, as it would on the Docker network (docker-proxy
    // would turn a refused connection into one that closes after the request was sent)
    const reg = spawnRegistrator(['-hostname', hostname, '-explicit', '-internal', ...(drain ? [] : ['-drain-on-stop=false']), `consul://${consul.addr}`]);
    registrators.push(reg);
    await reg.waitForLog((l) => l.event === 'resync', START_MS, 'first resync');
    const bal = await startBalancer(['--consul', consul.addr, '--workers', '2', '--services', service]);
    balancers.push(bal);
    const webs = [await drainingWeb('w1', service), await drainingWeb('w2', service), await drainingWeb('w3', service)];
    await routable(bal.proxyPort, service, 3);

    // on a thread of its own: the Consul double and the gate stay on this one, as an agent would be a process of its own
    const load = startLoadThread({ url: `http://127.0.0.1:${bal.proxyPort}/`, host: service, clients: 30 });
    await waitFor('load flowing', async () => (load.ok() >= 200 ? true : undefined), WAIT_MS, 20);
    const okBefore = load.ok();
    const stopAt = Date.now();
    await Promise.all([docker(['stop', '-t', '10', webs[1].id]), docker(['stop', '-t', '10', webs[2].id])]);
    // Keep the load on until the balancer follows the deregistrations, and a while after.
    await waitFor('both stopped containers deregistered', async () => {
      const list = Object.values(await (await fetch(`${consul.url}/v1/agent/services`)).json() as Record<string, { ID: string }>);
      return list.filter((s) => s.ID.startsWith(`${hostname}:`)).length === 1 ? true : undefined;
    }, DEREGISTER_MS);
    const okAtDeregister = load.ok();
    await waitFor('more load after the scale-down', async () => (load.ok() >= okAtDeregister + 200 ? true : undefined), WAIT_MS, 20);
    const result = await load.stop();
    const serverLogs = (await Promise.all(webs.slice(1).map((w) => docker(['logs', w.id])))).join(' | ');
    const exits = await Promise.all(webs.slice(1).map((w) => docker(['inspect', '--format', '{{.State.ExitCode}}', w.id])));
    await reg.stop();
    await bal.stop();
    const timelines = await Promise.all(webs.slice(1).map((w) => timelineOf(w.id, service, reg, bal)));
    return { reg, result, okBefore, exits, webs, service, serverLogs, stopAt, timelines };
  }

  /** The drain gap's pieces for one stopped container, from its own, the registrator's and the balancer's logs. */
  async function timelineOf(id: string, service: string, reg: RegistratorProcess, bal: BalancerProcess): Promise<DrainTimeline | undefined> {
    const sigterm = /SIGTERM at (\d+)/.exec(await docker(['logs', id]));
    const registered = reg.logs.find((l) => l.event === 'register' && l.containerId === id.slice(0, 12) && l.serviceName === service);
    if (!sigterm || !registered) return undefined;
    const serverId = `${String(registered.address)}:${String(registered.port)}`;
    return { sigtermAt: Number(sigterm[1]), ...registratorDrainTimes(reg.logs, String(registered.serviceId)), ...balancerDropTimes(bal.output(), service, serverId) };
  }

  test('scale 3 -> 1 under load with drain on stop: zero failed requests, GET and POST', async () => {
    const { reg, result, okBefore, exits, service, serverLogs, stopAt, timelines } = await scaleDownUnderLoad(true);
    for (const t of timelines) process.stdout.write(`# drain on: ${t ? describeTimeline(t) : 'no timeline (a log line missing)'}\n`);
    assert.deepEqual(exits, ['0', '0'], 'the stopped servers exited by themselves after draining, not by SIGKILL');
    assert.deepEqual(result.failed.slice(0, 10), [], `failed ${result.failed.length} of ${result.ok + result.failed.length}`);
    assert.ok(result.ok > okBefore + 200, `requests went on: ${okBefore} -> ${result.ok}`);
    assert.equal(reg.logs.filter((l) => l.event === 'drain' && l.serviceName === service).length, 2, 'both services went into maintenance');
    const w1 = result.byServer.get('w1') ?? 0;
    assert.ok(w1 > 0 && (result.byServer.get('w2') ?? 0) > 0 && (result.byServer.get('w3') ?? 0) > 0, JSON.stringify([...result.byServer]));
    const lastAfterKill = [...serverLogs.matchAll(/the last (-?\d+) ms after SIGTERM/g)].map((m) => Number(m[1]));
    const maintenanceAt = reg.logs.filter((l) => l.event === 'drain' && l.serviceName === service).map((l) => Number((l as { time?: number }).time) - stopAt);
    process.stdout.write(`# drain on: maintenance written ${JSON.stringify(maintenanceAt)} ms after docker stop began\n`);
    process.stdout.write(`# drain on: last request reached a stopped server ${JSON.stringify(lastAfterKill)} ms after its SIGTERM (window ${DRAIN_WINDOW_MS} ms)\n`);
    process.stdout.write(`# drain on: ${result.ok} ok, ${result.failed.length} failed, by server ${JSON.stringify([...result.byServer])}; servers: ${serverLogs}\n`);
  });

  test('SERVICE_WEIGHT reaches the balancer as Meta weight: a 3:1 split under wrr', async () => {
    const hostname = `${hostPrefix}-weight`;
    const service = `weightweb-${runId}`;
    const reg = spawnRegistrator(['-hostname', hostname, '-explicit', `consul://${consul.addr}`]);
    registrators.push(reg);
    await reg.waitForLog((l) => l.event === 'resync', START_MS, 'first resync');
    const bal = await startBalancer(['--consul', consul.addr, '--workers', '1', '--services', service, '--default-lb', 'wrr']);
    balancers.push(bal);
    const heavy = await runContainer({ publish: ['80'], env: { SERVICE_NAME: service, SERVICE_WEIGHT: '3', WEB_NAME: 'heavy' } });
    const light = await runContainer({ publish: ['80'], env: { SERVICE_NAME: service, WEB_NAME: 'light' } });
    await Promise.all([publishedPort(heavy.id), publishedPort(light.id)]);
    const count = async () => {
      const by: Record<string, number> = {};
      for (let i = 0; i < 40; i++) {
        const res = await request(`http://127.0.0.1:${bal.proxyPort}/`, { headers: { host: service } });
        const text = (await res.body.text()).trim();
        by[text] = (by[text] ?? 0) + 1;
      }
      return by;
    };
    const split = await waitFor('both instances routed', async () => {
      const by = await count();
      return Object.keys(by).length === 2 ? by : undefined;
    }, WAIT_MS, 200);
    // wrr is deterministic (smooth weighted round robin): exactly 3 of every 4 picks
    const again = await count();
    assert.deepEqual(again, { 'web container heavy': 30, 'web container light': 10 }, JSON.stringify(split));
    await reg.stop();
    await bal.stop();
  });
});
