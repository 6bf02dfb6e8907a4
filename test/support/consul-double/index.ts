// Consul HTTP API test double: a single-node agent + catalog (datacenter "dc1") on node:http.
// Test fixture, never shipped. Builtins only, so cli.ts can run inside a container with just node.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { listenCuttable } from '../cuttable-listener.js';
import { CheckRunner } from './check-runner.js';
import { createHandler } from './router.js';
import { ConsulState } from './state.js';

export interface ConsulDoubleOptions {
  /** listen address; default 127.0.0.1 */
  host?: string;
  /** default 0 (ephemeral) */
  port?: number;
  /** node name in catalog answers; default "consul-double" */
  nodeName?: string;
  /** node address in catalog answers; default 127.0.0.1 */
  nodeAddress?: string;
  /** default "dc1" */
  datacenter?: string;
  /** execute HTTP/TCP checks at their Interval; default false (they keep their initial status) */
  runChecks?: boolean;
  /** how often DeregisterCriticalServiceAfter is enforced; default 1000 ms (Consul: ~30 s) */
  reapIntervalMs?: number;
}

export interface ConsulDouble {
  readonly host: string;
  readonly port: number;
  /** http://host:port */
  readonly url: string;
  /** close the listener and every open connection (in-flight blocking queries fail); state is kept */
  stop(): Promise<void>;
  /** listen again on the same host:port */
  start(): Promise<void>;
  /** delay every answer by ms (a slow agent) */
  setLatency(ms: number): void;
  /** stop for good: listener, connections and timers */
  close(): Promise<void>;
  /** the in-memory store, for assertions a real agent could not offer */
  readonly state: ConsulState;
}

export async function startConsulDouble(opts: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  const host = opts.host ?? '127.0.0.1';
  const state = new ConsulState({
    nodeName: opts.nodeName ?? 'consul-double',
    nodeAddress: opts.nodeAddress ?? '127.0.0.1',
    datacenter: opts.datacenter ?? 'dc1',
    nodeId: randomUUID(),
  });
  const runner = new CheckRunner(state, { runChecks: opts.runChecks ?? false, reapIntervalMs: opts.reapIntervalMs ?? 1000 });
  let latencyMs = 0;
  const server = http.createServer(createHandler({ state, runner, latencyMs: () => latencyMs }));
  // Blocking queries last up to 10m + jitter; node's default request timeouts would cut them.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 30_000;
  const listener = await listenCuttable(server, host, opts.port ?? 0);
  const port = listener.port;
  let closed = false;
  const stop = () => listener.cut();

  return {
    host,
    port,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    state,
    stop,
    async start() {
      if (closed) throw Object.assign(new Error('consul double is closed'), { code: 'ERR_CONSUL_DOUBLE_CLOSED' });
      await listener.restore();
    },
    setLatency(ms: number) {
      latencyMs = Math.max(0, ms);
    },
    async close() {
      if (closed) return;
      closed = true;
      runner.close();
      await stop();
    },
  };
}

export { ConsulState } from './state.js';
export type { Registration, ServiceDef, CheckDef, CheckStatus } from './registration.js';
