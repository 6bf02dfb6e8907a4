// The Consul a test talks to: the in-process double, or the real agent named by CONSUL_HTTP_ADDR,
// always behind a TCP gate so outage tests run unchanged against both.
import http from 'node:http';
import { startConsulDouble, type ConsulDouble, type ConsulDoubleOptions } from './consul-double/index.js';
import { startTcpGate } from './tcp-gate.js';

export interface ConsulTarget {
  /** the gate's host and port: what the code under test should use */
  readonly host: string;
  readonly port: number;
  /** http://host:port of the gate */
  readonly url: string;
  /** "host:port" of the gate */
  readonly addr: string;
  /** true when CONSUL_HTTP_ADDR points at a real agent */
  readonly real: boolean;
  /** the double when not real (latency control, direct state access) */
  readonly double?: ConsulDouble;
  /** cut connectivity: listener closed, open connections destroyed */
  outage(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

/** Parse CONSUL_HTTP_ADDR the way the Consul CLI does: "host:port" or "http://host:port". */
export function parseConsulAddr(value: string): { host: string; port: number } {
  const url = new URL(/^[a-z]+:\/\//i.test(value) ? value : `http://${value}`);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (url.protocol === 'https:' ? 443 : 8500)) };
}

/**
 * ownDouble: a double of the test's own even when CONSUL_HTTP_ADDR names an agent, for tests that
 * change what no client can change on a real agent (its connection limit, its latency).
 */
export async function consulForTest(opts: ConsulDoubleOptions & { ownDouble?: boolean } = {}): Promise<ConsulTarget> {
  const { ownDouble, ...doubleOpts } = opts;
  const realAddr = ownDouble ? undefined : process.env.CONSUL_HTTP_ADDR;
  const double = realAddr ? undefined : await startConsulDouble({ ...doubleOpts, host: '127.0.0.1', port: 0 });
  const target = realAddr ? parseConsulAddr(realAddr) : { host: double!.host, port: double!.port };
  const gate = await startTcpGate(target);
  return {
    host: gate.host,
    port: gate.port,
    url: `http://${gate.host}:${gate.port}`,
    addr: gate.addr,
    real: Boolean(realAddr),
    double,
    outage: () => gate.outage(),
    restore: () => gate.restore(),
    async close() {
      await gate.close();
      await double?.close();
    },
  };
}

function call(target: { host: string; port: number }, method: string, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (process.env.CONSUL_HTTP_TOKEN) headers['X-Consul-Token'] = process.env.CONSUL_HTTP_TOKEN;
    const req = http.request({ host: target.host, port: target.port, method, path, headers, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Deregister every agent service whose ID starts with prefix, so tests against a real agent leave no trace. */
export async function cleanConsul(target: { host: string; port: number }, prefix: string, timeoutMs = 5000): Promise<string[]> {
  if (!prefix) throw Object.assign(new Error('cleanConsul needs a non-empty prefix'), { code: 'ERR_CLEAN_CONSUL_PREFIX' });
  const res = await call(target, 'GET', '/v1/agent/services', timeoutMs);
  if (res.status !== 200) throw Object.assign(new Error(`GET /v1/agent/services -> ${res.status}: ${res.body.slice(0, 200)}`), { code: 'ERR_CLEAN_CONSUL' });
  const ids = Object.keys(JSON.parse(res.body) as Record<string, unknown>).filter((id) => id.startsWith(prefix));
  for (const id of ids) await call(target, 'PUT', `/v1/agent/service/deregister/${encodeURIComponent(id)}`, timeoutMs);
  return ids;
}

/**
 * Names unique to one test. A shared agent (a real one, or CI's shared double) serves every test of
 * the run, so each test registers only names and KV keys of its own scope and removes them at the
 * end, also when it fails. IDs and names start with the scope's tag (cleanConsul finds the IDs by
 * that prefix; templates select the names with hasPrefix); names double as Host names, so the tag
 * is one lower-case DNS label.
 */
export interface TestScope {
  readonly tag: string;
  /** service name, e.g. name('web') = 't3k9x2a-web' */
  name(base: string): string;
  /** service ID, e.g. id('web-1') = 't3k9x2a-web-1' */
  id(base: string): string;
  /** KV key under the scope, e.g. kv('conf/a') = 't3k9x2a/conf/a' */
  kv(key: string): string;
  /**
   * Deregister every service whose ID has the tag and delete the scope's KV tree. Restores a cut
   * gate first; never throws (it runs in finally blocks, where a throw would hide the test's own
   * failure), but says on stderr what it could not remove.
   */
  clean(target: { host: string; port: number; restore?: () => Promise<void> }): Promise<void>;
}

let scopeCounter = 0;

export function testScope(): TestScope {
  const tag = `t${(scopeCounter++).toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  return {
    tag,
    name: (base) => `${tag}-${base}`,
    id: (base) => `${tag}-${base}`,
    kv: (key) => `${tag}/${key}`,
    async clean(target) {
      try {
        await target.restore?.();
        await cleanConsul(target, `${tag}-`);
        await call(target, 'DELETE', `/v1/kv/${tag}?recurse`, 5000);
      } catch (err) {
        process.stderr.write(`test scope ${tag}: cleanup failed, registrations may be left behind: ${(err as Error).message}\n`);
      }
    },
  };
}
