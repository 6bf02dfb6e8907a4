// Our TCP relay for the TCP benchmark: one worker runtime (the same code a cluster worker runs,
// balancer/src/l4) serving one proto=tcp upstream on one port, in one process (1 worker, as the
// nginx `stream` and HAProxy `mode tcp` rows run 1 worker / 1 thread).
// usage: node dist/bench/support/ours-tcp.js <listenPort> <upstreamPort>
import pino from 'pino';
import { createWorkerRuntime } from '../../balancer/src/proxy/proxy-runtime.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';

const [listenArg, upstreamArg] = process.argv.slice(2);
const port = Number(listenArg);
const upstream = Number(upstreamArg);
const rt = createWorkerRuntime({
  logger: pino({ level: 'warn' }), accessLog: false, maxConnectionsPerServer: 1024,
  timeouts: { connectMs: 2000, headersMs: 5000, idleMs: 60_000, clientKeepAliveMs: 5000 },
  l4: { tcpPorts: { from: port, to: port }, tcpHost: '127.0.0.1', idleMs: 600_000, drainMs: 30_000, proxyProtocolFrom: [] },
});
rt.applyTable(tableFromUpstreams({
  bench: {
    name: 'bench', algorithm: 'roundrobin', origin: 'admin', retry: DEFAULT_TABLE_DEFAULTS.retry, protocol: 'tcp', listen: [{ port }],
    servers: [{ id: `127.0.0.1:${upstream}`, host: '127.0.0.1', port: upstream, weight: 1, maxFails: 0, failTimeoutMs: 10_000, down: false, backup: false }],
  },
}, []));
process.on('SIGTERM', () => void rt.close().then(() => process.exit(0)));
