// Start our balancer (a build at `root`: this checkout, or a copy of an older one for A/B rows) as
// a pinned child with one static upstream `bench`, and wait until it serves it.
import path from 'node:path';
import { request } from 'undici';
import { freePort, spawnPinned, waitForPort, type Started } from './processes.js';

export interface OursOptions {
  /** repository root of the build to run (its bin/balancer.js and dist/) */
  readonly root: string;
  readonly engine: 'native' | 'undici';
  readonly workers: number;
  readonly cpus: string;
  readonly upstreamPort: number;
  /** row name; default `ours <engine> <workers>w` */
  readonly name?: string;
  /** node flags before the script (e.g. --cpu-prof; node:cluster workers inherit them) */
  readonly nodeArgs?: readonly string[];
  /** also listen for TLS (certificates from certDir, defaultCert for clients without SNI): baseUrl is https */
  readonly tls?: { readonly certDir: string; readonly defaultCert: string };
}

export interface OursTarget {
  readonly name: string;
  /** undefined: it would not start (printed as such) */
  readonly proc: Started | undefined;
  readonly baseUrl: string | undefined;
  /** the admin API (metrics: event-loop lag per process) */
  readonly adminUrl?: string;
  readonly note?: string;
}

async function startOnce(o: OursOptions, name: string): Promise<OursTarget> {
  const [port, admin, tlsPort] = [await freePort(), await freePort(), await freePort()];
  const tlsArgs = o.tls === undefined ? [] : ['--tls-listen', `127.0.0.1:${tlsPort}`, '--tls-cert-dir', o.tls.certDir, '--tls-default-cert', o.tls.defaultCert];
  const proc = spawnPinned(o.cpus, process.execPath, [
    ...(o.nodeArgs ?? []), path.join(o.root, 'bin', 'balancer.js'), '--no-consul', '--workers', String(o.workers), '--engine', o.engine,
    '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${admin}`, '--log-level', 'warn', ...tlsArgs,
  ]);
  try {
    await waitForPort(admin, 15_000);
    // freePort() releases the port before the balancer binds it: a dead child is a failed start
    if (proc.child.exitCode !== null) throw new Error(`balancer exited with ${proc.child.exitCode}`);
    const res = await request(`http://127.0.0.1:${admin}/upstream/bench`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ servers: [{ host: '127.0.0.1', port: o.upstreamPort }] }),
      headersTimeout: 10_000, bodyTimeout: 10_000,
    });
    // 202: accepted, not yet confirmed by every worker; the polling below waits for it
    if (res.statusCode !== 200 && res.statusCode !== 202) throw new Error(`admin POST /upstream/bench -> ${res.statusCode}: ${(await res.body.text()).slice(0, 200)}`);
    await res.body.dump();
    await waitForPort(port, 15_000);
    const deadline = Date.now() + 10_000;
    let okInARow = 0;
    while (okInARow < 50 && Date.now() < deadline) {
      const r = await request(`http://127.0.0.1:${port}/small.txt`, { headers: { host: 'bench' }, headersTimeout: 5_000 }).catch(() => undefined);
      if (r) await r.body.dump();
      okInARow = r?.statusCode === 200 ? okInARow + 1 : 0;
    }
    if (okInARow < 50) throw new Error('balancer did not start serving the bench upstream');
    if (o.tls !== undefined) await waitForPort(tlsPort, 15_000);
    return { name, proc, baseUrl: o.tls === undefined ? `http://127.0.0.1:${port}` : `https://127.0.0.1:${tlsPort}`, adminUrl: `http://127.0.0.1:${admin}` };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

/** Two attempts (fresh ports); a build that will not start is a row with a note, not a failed run. */
export async function startOurs(o: OursOptions): Promise<OursTarget> {
  const name = o.name ?? `ours ${o.engine} ${o.workers}w`;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(o, name);
    } catch (err) {
      const msg = (err as Error).message.split('\n')[0];
      if (attempt >= 2) return { name, proc: undefined, baseUrl: undefined, note: msg };
      console.error(`# ${name} start failed (${msg}), retrying with fresh ports`);
    }
  }
}
