// Run the Consul double as a process (benchmarks, docker-compose end-to-end test):
//   node dist/test/support/consul-double/cli.js --port 8500 --host 0.0.0.0 --node-name consul --run-checks
// Builtins only: it is copied into a container that has nothing but the node binary.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { parseArgs } from 'node:util';
import { startConsulDouble } from './index.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8500' },
    host: { type: 'string', default: '127.0.0.1' },
    'node-name': { type: 'string', default: 'consul' },
    'node-address': { type: 'string' },
    datacenter: { type: 'string', default: 'dc1' },
    'run-checks': { type: 'boolean', default: false },
    'latency-ms': { type: 'string', default: '0' },
    'http-max-conns-per-client': { type: 'string', default: '200' },
    'enable-script-checks': { type: 'boolean', default: false },
    // KV noise writes per second (default 1; 0: none) and the coordinate batches (--no-coordinates)
    'kv-noise-per-sec': { type: 'string', default: '1' },
    'no-coordinates': { type: 'boolean', default: false },
    'reap-interval-ms': { type: 'string', default: '30000' },
    'deregister-critical-min-ms': { type: 'string', default: '60000' },
    'check-update-interval-ms': { type: 'string', default: '300000' },
    // HTTPS with HTTP/2 (Consul's ports.https listener): PEM files of the certificate (chain) and its key
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'https-port': { type: 'string', default: '0' },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`consul-double: invalid --port ${values.port}\n`);
  process.exit(2);
}
const host = values.host ?? '127.0.0.1';
// Bound to every interface, a real agent advertises its first private IPv4 address; do the same so
// catalog answers (Node.Address) are reachable from other containers.
function advertiseAddress(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}
const nodeAddress = values['node-address'] ?? (host === '0.0.0.0' || host === '::' ? advertiseAddress() : host);

if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) {
  process.stderr.write('consul-double: --tls-cert and --tls-key go together\n');
  process.exit(2);
}
const tls = values['tls-cert'] && values['tls-key'] ? { cert: readFileSync(values['tls-cert'], 'utf8'), key: readFileSync(values['tls-key'], 'utf8') } : undefined;
const double = await startConsulDouble({
  tls,
  httpsPort: Number(values['https-port']) || 0,
  host,
  port,
  nodeName: values['node-name'],
  nodeAddress,
  datacenter: values.datacenter,
  runChecks: values['run-checks'],
  httpMaxConnsPerClient: Number(values['http-max-conns-per-client']),
  enableScriptChecks: values['enable-script-checks'],
  noise: { kvWritesPerSec: Number(values['kv-noise-per-sec']) || 0, coordinates: !values['no-coordinates'] },
  reapIntervalMs: Number(values['reap-interval-ms']),
  deregisterCriticalMinMs: Number(values['deregister-critical-min-ms']),
  checkUpdateIntervalMs: Number(values['check-update-interval-ms']),
});
double.setLatency(Number(values['latency-ms']) || 0);
process.stdout.write(`${JSON.stringify({ component: 'consul-double', msg: 'listening', url: double.url, httpsUrl: double.httpsUrl, host: double.host, port: double.port, node: values['node-name'], nodeAddress, runChecks: values['run-checks'] })}\n`);

let exiting = false;
const shutdown = (signal: string) => {
  if (exiting) return;
  exiting = true;
  process.stdout.write(`${JSON.stringify({ component: 'consul-double', msg: 'exiting', signal })}\n`);
  const force = setTimeout(() => process.exit(0), 2000);
  force.unref();
  void double.close().then(() => process.exit(0));
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
