// HTTP/2 throughput, ours vs nginx (nginx 1.22's `listen ... http2`, its spelling of `http2 on`) vs
// node:http2's own floor, side by side in one run. A script, not a test:
//   npm run build && node dist/bench/http2-h2load.js [requests=20000]
// Rows (h2load: 100 streams on 10 connections, -c 10 -m 10):
//   h2c   GET / to an HTTP/1.1 backend: ours (--h2c), nginx (`listen http2`), the node:http2 floor
//         (bench/support/http2-floor-proxy.ts: node:http2 front, raw-socket HTTP/1.1 client, nothing else)
//   TLS   the same over TLS with ALPN h2: ours on --tls-listen, nginx `listen ssl http2`, the floor over TLS
//   gRPC  unary calls (POST, a length-prefixed message, content-type application/grpc, te: trailers) to
//         3 node:http2 gRPC servers: ours (proto=grpc, from the Consul double), nginx grpc_pass, and
//         direct to one server; each path is first checked with 30 calls that must answer grpc-status 0
//         in trailers, and the per-call spread over the 3 servers is counted on the servers (goal <= 5 %).
// Every proxy runs 1 worker pinned to core 0; h2load and the servers run on core 1. Figures: req/s and
// CPU µs per request of the proxy's processes (utime+stime from /proc, primary + worker for ours).
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { balancerBin, repoRoot } from '../test/support/repo-root.js';
import { makeTestCa } from '../test/support/tls-certs.js';
import { startConsulDouble } from '../test/support/consul-double/index.js';
import { treeUsage } from './support/proc-stats.js';
import { freePort, spawnPinned, startNginx, tempDir, waitForPort, type Started } from './support/processes.js';

const run = promisify(execFile);
const PROXY_CPU = '0';
const LOAD_CPU = '1';
const n = Number(process.argv[2] ?? 20_000);
const NAME = 'bench.example.test';
const GRPC_PATH = '/balancertest.Echo/Unary';

interface Load { readonly url: string; readonly authority: string; readonly grpcMessage?: string }
interface Row { readonly name: string; readonly rps: number; readonly cpuUs: number | undefined; readonly spread?: string }

/** h2load's req/s; throws unless every request succeeded (2xx/3xx) and, over TLS, ALPN chose h2. */
async function h2load(load: Load, requests: number): Promise<number> {
  const args = ['-c', LOAD_CPU, 'h2load', '-n', String(requests), '-c', '10', '-m', '10', '-H', `:authority: ${load.authority}`];
  if (load.grpcMessage !== undefined) args.push('-d', load.grpcMessage, '-H', 'content-type: application/grpc', '-H', 'te: trailers');
  const { stdout } = await run('taskset', [...args, load.url], { timeout: 180_000 });
  const rps = /finished in [^,]+, ([\d.]+) req\/s/.exec(stdout);
  const ok = /(\d+) succeeded/.exec(stdout.split('requests:')[1] ?? '');
  const codes2xx = /status codes: (\d+) 2xx/.exec(stdout);
  if (rps === null || ok === null || Number(ok[1]) !== requests || codes2xx === null || Number(codes2xx[1]) !== requests) throw new Error(`h2load: ${stdout}`);
  if (load.url.startsWith('https:') && !/Application protocol: h2\b/.test(stdout)) throw new Error(`h2load did not negotiate h2: ${stdout}`);
  return Number(rps[1]);
}

async function measure(name: string, load: Load, pid: number | undefined, spreadOf?: () => Promise<number[]>): Promise<Row> {
  await h2load(load, Math.min(2_000, n)); // warm up (JIT, sessions, upstream connections)
  const before = pid === undefined ? 0 : treeUsage(pid).cpuMs;
  const countsBefore = await spreadOf?.();
  const rps = await h2load(load, n);
  const cpuUs = pid === undefined ? undefined : ((treeUsage(pid).cpuMs - before) * 1000) / n;
  let spread: string | undefined;
  if (spreadOf !== undefined && countsBefore !== undefined) {
    const calls = (await spreadOf()).map((c, i) => c - countsBefore[i]);
    const mean = calls.reduce((a, b) => a + b, 0) / calls.length;
    const worst = Math.max(...calls.map((c) => Math.abs(c - mean) / mean));
    spread = `${calls.join(' / ')} calls, worst ${(worst * 100).toFixed(1)} % off the mean`;
  }
  return { name, rps, cpuUs, spread };
}

/** 30 unary calls over one session: every answer must be HTTP 200, application/grpc, one message, grpc-status 0 in trailers. */
async function checkGrpc(url: string, authority: string, message: Buffer): Promise<void> {
  const session = http2.connect(url);
  session.on('error', () => undefined);
  try {
    await once(session, 'connect');
    for (let i = 0; i < 30; i++) {
      const stream = session.request({ ':method': 'POST', ':path': GRPC_PATH, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
      stream.end(message);
      const chunks: Buffer[] = [];
      let head: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      stream.on('response', (h) => { head = h; });
      stream.on('trailers', (t) => { trailers = t; });
      stream.on('data', (c: Buffer) => chunks.push(c));
      await once(stream, 'close');
      const body = Buffer.concat(chunks);
      if (Number(head[':status']) !== 200 || head['content-type'] !== 'application/grpc' || trailers['grpc-status'] !== '0' || body.length < 5 || body.readUInt32BE(1) !== body.length - 5) {
        throw new Error(`gRPC check via ${url}: status ${head[':status']}, grpc-status ${String(trailers['grpc-status'] ?? head['grpc-status'])}, ${body.length} bytes`);
      }
    }
  } finally {
    session.close();
  }
}

function print(title: string, rows: Row[], nginxName: string): void {
  console.log(`\n## ${title}`);
  const nginx = rows.find((r) => r.name === nginxName);
  for (const r of rows) {
    const perCore = r.cpuUs !== undefined && nginx?.cpuUs !== undefined && r !== nginx ? `   per core ${(nginx.cpuUs / r.cpuUs).toFixed(2)}x nginx` : '';
    const rpsRatio = nginx !== undefined && r !== nginx ? `   req/s ${(r.rps / nginx.rps).toFixed(2)}x nginx` : '';
    const cpu = r.cpuUs === undefined ? '     -' : r.cpuUs.toFixed(1).padStart(6);
    console.log(`${r.name.padEnd(18)} ${r.rps.toFixed(0).padStart(8)} req/s   ${cpu} CPU µs/req${rpsRatio}${perCore}${r.spread === undefined ? '' : `\n${''.padEnd(18)} spread ${r.spread}`}`);
  }
}

async function main(): Promise<void> {
  const load0 = os.loadavg();
  console.log(`# HTTP/2: h2load -n ${n} -c 10 -m 10; proxies 1 worker on core ${PROXY_CPU}, h2load and servers on core ${LOAD_CPU}`);
  console.log('# reproduce: npm run build && node dist/bench/http2-h2load.js [requests]');
  console.log(`# load average before: ${load0.map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} CPUs)`);
  const dir = tempDir('bench-h2-');
  const ca = await makeTestCa('bench-h2');
  const pem = await ca.issue([NAME]);
  const certDir = path.join(dir, 'certs');
  mkdirSync(certDir);
  const pemPath = path.join(certDir, 'bench.pem');
  writeFileSync(pemPath, pem.cert + pem.key, { mode: 0o600 });
  // protobuf EchoRequest { text = 1: "hello" } behind the 5-byte gRPC prefix
  const message = Buffer.from([0, 0, 0, 0, 7, 0x0a, 5, ...Buffer.from('hello')]);
  const messagePath = path.join(dir, 'unary.msg');
  writeFileSync(messagePath, message);

  const started: Started[] = [];
  const consul = await startConsulDouble({ noise: false });
  try {
    const servers = spawnPinned(LOAD_CPU, process.execPath, [path.join(repoRoot(), 'dist', 'bench', 'support', 'h2-bench-servers.js')]);
    started.push(servers);
    const ports = JSON.parse((await once(createInterface({ input: servers.child.stdout! }), 'line'))[0] as string) as { http: number; grpc: number[]; control: number };
    const counts = async (): Promise<number[]> => (await fetch(`http://127.0.0.1:${ports.control}/counts`)).json() as Promise<number[]>;
    const register = (id: string, name: string, port: number, tags: string[]) => fetch(`${consul.url}/v1/agent/service/register`, {
      method: 'PUT', body: JSON.stringify({ ID: id, Name: name, Address: '127.0.0.1', Port: port, Tags: tags }),
    }).then((r) => { if (!r.ok) throw new Error(`register ${id}: ${r.status}`); });
    await register('app-0', 'app', ports.http, []);
    for (const [i, p] of ports.grpc.entries()) await register(`echo-${i}`, 'echo', p, ['proto=grpc']);

    const [plain, tlsPort, admin, floorPlain, floorTls, nginxPlain, nginxTls, nginxGrpc] = await Promise.all(Array.from({ length: 8 }, () => freePort()));
    const ours = spawnPinned(PROXY_CPU, process.execPath, [
      balancerBin(), '--consul', `127.0.0.1:${consul.port}`, '--workers', '1', '--log-level', 'warn', '--h2c',
      '--listen', `127.0.0.1:${plain}`, '--admin', `127.0.0.1:${admin}`, '--tls-listen', `127.0.0.1:${tlsPort}`,
      '--tls-cert-dir', certDir, '--tls-default-cert', NAME,
    ]);
    started.push(ours);
    const floor = spawnPinned(PROXY_CPU, process.execPath, [path.join(repoRoot(), 'dist', 'bench', 'support', 'http2-floor-proxy.js'), String(floorPlain), String(ports.http)]);
    const floorTlsProc = spawnPinned(PROXY_CPU, process.execPath, [path.join(repoRoot(), 'dist', 'bench', 'support', 'http2-floor-proxy.js'), String(floorTls), String(ports.http), pemPath]);
    started.push(floor, floorTlsProc);
    const nginx = startNginx(PROXY_CPU, [
      'keepalive_requests 1000000; http2_max_concurrent_streams 128;',
      `upstream app { server 127.0.0.1:${ports.http}; keepalive 64; }`,
      `upstream echo { ${ports.grpc.map((p) => `server 127.0.0.1:${p};`).join(' ')} keepalive 64; }`,
      `server { listen 127.0.0.1:${nginxPlain} http2; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
      `server { listen 127.0.0.1:${nginxTls} ssl http2; ssl_certificate ${pemPath}; ssl_certificate_key ${pemPath};`,
      `  location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }`,
      `server { listen 127.0.0.1:${nginxGrpc} http2; location / { grpc_pass grpc://echo; } }`,
    ].join('\n'));
    started.push(nginx);
    await Promise.all([waitForPort(plain, 20_000), waitForPort(tlsPort, 20_000), waitForPort(floorPlain), waitForPort(floorTls), waitForPort(nginxPlain), waitForPort(nginxTls), waitForPort(nginxGrpc)]);
    // ours routes once the catalog reached its worker: poll a gRPC check with a deadline
    const deadline = Date.now() + 20_000;
    for (;;) {
      try { await checkGrpc(`http://127.0.0.1:${plain}`, 'echo', message); break; } catch (err) { if (Date.now() > deadline) throw err; }
      await new Promise((r) => setTimeout(r, 200));
    }
    await checkGrpc(`http://127.0.0.1:${nginxGrpc}`, 'echo', message);
    await checkGrpc(`http://127.0.0.1:${ports.grpc[0]}`, 'echo', message);
    console.log('# gRPC check: 30 unary calls each through ours, nginx grpc_pass and direct: HTTP 200, one message, grpc-status 0 in trailers');

    const h2c = [
      await measure('balancer', { url: `http://127.0.0.1:${plain}/`, authority: 'app' }, ours.pid),
      await measure('nginx', { url: `http://127.0.0.1:${nginxPlain}/`, authority: 'app' }, nginx.pid),
      await measure('node:http2 floor', { url: `http://127.0.0.1:${floorPlain}/`, authority: 'app' }, floor.pid),
    ];
    const tls = [
      await measure('balancer', { url: `https://127.0.0.1:${tlsPort}/`, authority: 'app' }, ours.pid),
      await measure('nginx', { url: `https://127.0.0.1:${nginxTls}/`, authority: 'app' }, nginx.pid),
      await measure('node:http2 floor', { url: `https://127.0.0.1:${floorTls}/`, authority: 'app' }, floorTlsProc.pid),
    ];
    const grpc = [
      await measure('balancer', { url: `http://127.0.0.1:${plain}${GRPC_PATH}`, authority: 'echo', grpcMessage: messagePath }, ours.pid, counts),
      await measure('nginx grpc_pass', { url: `http://127.0.0.1:${nginxGrpc}${GRPC_PATH}`, authority: 'echo', grpcMessage: messagePath }, nginx.pid, counts),
      await measure('direct (1 server)', { url: `http://127.0.0.1:${ports.grpc[0]}${GRPC_PATH}`, authority: 'echo', grpcMessage: messagePath }, undefined),
    ];
    print('h2c (prior knowledge), GET / -> HTTP/1.1 backend', h2c, 'nginx');
    print('TLS (ALPN h2), GET / -> HTTP/1.1 backend', tls, 'nginx');
    print('gRPC unary over h2c -> 3 node:http2 gRPC servers', grpc, 'nginx grpc_pass');
    console.log(`\n# load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await Promise.all(started.map((s) => s.stop()));
    await consul.close();
    await ca.close();
  }
}

await main();

