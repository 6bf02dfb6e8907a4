// Registrator at scale: a full resync of N containers (default 1,000) through the real Consul backend and
// HTTP to the in-process Consul double, which enforces http_max_conns_per_client. Docker is an in-memory
// fake (1,000 real containers would not fit this machine): inspects cost nothing, so the figures are the
// registrator's own work plus the agent round trips. For each -consul-max-conns budget: cold resync (every
// service registered), warm resync (nothing to change), peak connections the double saw, 429s, requests.
// Prints figures, never asserts.
//   npm run build && taskset -c 1 node dist/bench/registrator-resync-scale.js [--containers 1000] [--limit 200]
import os from 'node:os';
import { pino } from 'pino';
import { Bridge } from '../registrator/src/bridge.js';
import { AgentBudget, BudgetedRegistry } from '../registrator/src/registry/agent-budget.js';
import { ConsulRegistry } from '../registrator/src/registry/consul-backend.js';
import { startConsulDouble } from '../test/support/consul-double/index.js';
import { FakeDocker } from '../test/support/registrator-fakes.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const containers = arg('containers', 1000);
const limit = arg('limit', 200);

async function run(budgetSize: number): Promise<string> {
  const consul = await startConsulDouble({ httpMaxConnsPerClient: limit });
  const docker = new FakeDocker();
  for (let i = 0; i < containers; i++) docker.containers.set(`c${i}`, { running: true, env: ['SERVICE_NAME=web', 'SERVICE_CHECK_TTL=30s'] });
  const consulRegistry = new ConsulRegistry({ host: consul.host, port: consul.port, secure: false, instanceMarker: 'bench', callTimeoutMs: 10_000 });
  const budget = new AgentBudget({ maxConcurrent: budgetSize });
  const bridge = new Bridge({
    docker: docker.asDocker(), registry: new BudgetedRegistry(consulRegistry, budget), logger: pino({ level: 'silent' }),
    mapping: { hostname: 'bench', internal: false, explicit: true, forceTags: [], healthGate: 'off', instanceMarker: 'bench' },
    deregister: 'always', cleanup: true, resyncSeconds: 0, driftCheckSeconds: 0, resyncConcurrency: budgetSize,
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await bridge.requestResync('cold');
  const cold = performance.now() - t0;
  const cpuCold = process.cpuUsage(cpu0);
  const after = consul.stats();
  const t1 = performance.now();
  await bridge.requestResync('warm');
  const warm = performance.now() - t1;
  const registered = consul.state.agentServices().length;
  const stats = consul.stats();
  await bridge.stop(1000);
  consulRegistry.close();
  await consul.close();
  const ms = (x: number) => `${Math.round(x)} ms`;
  return `| ${budgetSize} | ${registered} | ${ms(cold)} | ${Math.round((cpuCold.user + cpuCold.system) / 1000 / containers * 1000)} µs | ${ms(warm)} | ${stats.peakPerClient} | ${stats.rejected} | ${after.requests} / ${stats.requests - after.requests} | ${budget.stats.overBudget} |`;
}

const rows: string[] = [];
for (const size of [1, 8, 32]) rows.push(await run(size));
process.stdout.write(`registrator resync, ${containers} containers (fake Docker, Consul double limit ${limit}/client), node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (busy shared machine)\n`);
process.stdout.write('| -consul-max-conns | registered | cold resync | CPU per container (cold, whole process) | warm resync | peak conns at agent | 429s | requests cold / warm | over-budget retries |\n|---|---|---|---|---|---|---|---|---|\n');
process.stdout.write(rows.join('\n') + '\n');
