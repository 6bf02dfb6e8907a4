// The TCP relay of one worker runtime with raw sockets: half-close in both directions, the idle
// timeout (and activity keeping a connection open), connect retry past a dead server before any
// byte is relayed (with its passive ejection), leastconn, and ports following the table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import pino from 'pino';
import { createWorkerRuntime } from '../../balancer/src/proxy/proxy-runtime.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { Algorithm, UpstreamSpec } from '../../balancer/src/routing/types.js';
import { freePort } from '../support/free-port.js';
import { until, untilRetryingErrors } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

function tcpUpstream(name: string, port: number, servers: number[], algorithm: Algorithm = 'roundrobin'): UpstreamSpec {
  return {
    name, algorithm, origin: 'admin', retry: DEFAULT_TABLE_DEFAULTS.retry, protocol: 'tcp', listen: [{ port }],
    servers: servers.map((p) => ({ id: `127.0.0.1:${p}`, host: '127.0.0.1', port: p, weight: 1, maxFails: 1, failTimeoutMs: 10_000, down: false, backup: false })),
  };
}

async function runtimeWith(tcpPorts: { from: number; to: number }, idleMs = 60_000) {
  return createWorkerRuntime({
    logger, accessLog: false, maxConnectionsPerServer: 8,
    timeouts: { connectMs: 1000, headersMs: 5000, idleMs: 5000, clientKeepAliveMs: 1000 },
    l4: { tcpPorts, tcpHost: '127.0.0.1', idleMs, drainMs: 1000, proxyProtocolFrom: [] },
  });
}

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

function connectWhenOpen(port: number): Promise<net.Socket> {
  return untilRetryingErrors(`tcp port ${port} open`, () => new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  }), 5000, 20);
}

function collect(s: net.Socket): { text: () => string; ended: Promise<void> } {
  let text = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => { text += d; });
  return { text: () => text, ended: once(s, 'end').then(() => undefined) };
}

test('half-close: the client ends its side and still reads the answer; the server ends first and still reads', async () => {
  // backend: answers after the client's end (echo of the byte count), then ends
  const counted = net.createServer({ allowHalfOpen: true }, (s) => {
    let n = 0;
    s.on('data', (d) => { n += d.length; });
    s.on('end', () => { s.end(`got ${n} bytes`); });
  });
  // backend: greets and ends its side at once, then reads what the client still sends
  let lateFromClient = '';
  const lateRead = new Promise<void>((resolve) => {
    greeter.on('connection', (s) => {
      s.setEncoding('utf8');
      s.on('data', (d: string) => { lateFromClient += d; });
      s.on('end', () => { s.destroy(); resolve(); });
    });
  });
  const [countedPort, greeterPort, tcpA, tcpB] = [await listen(counted), await listen(greeter), await freePort(), await freePort()];
  const rt = await runtimeWith({ from: Math.min(tcpA, tcpB), to: Math.max(tcpA, tcpB) });
  try {
    rt.applyTable(tableFromUpstreams({ a: tcpUpstream('a', tcpA, [countedPort]), b: tcpUpstream('b', tcpB, [greeterPort]) }, []));
    const c1 = await connectWhenOpen(tcpA);
    const r1 = collect(c1);
    c1.write('x'.repeat(1000));
    c1.end('y'.repeat(24)); // FIN: the client is done sending
    await r1.ended;
    assert.equal(r1.text(), 'got 1024 bytes', 'the answer came after the client half-closed');

    const c2 = await connectWhenOpen(tcpB);
    const r2 = collect(c2);
    c2.write('before ');
    await r2.ended; // the server ended its side
    assert.equal(c2.writable, true, 'the client may still write after the server ended its side');
    c2.end('after the server ended');
    await lateRead;
    assert.equal(lateFromClient, 'before after the server ended');
  } finally {
    await rt.close();
    counted.close();
    greeter.close();
  }
});
const greeter = net.createServer({ allowHalfOpen: true }, (s) => { s.end('hello'); });

test('idle timeout: a silent connection is closed, a talking one is not', async () => {
  const echo = net.createServer((s) => s.pipe(s));
  const [echoPort, tcp] = [await listen(echo), await freePort()];
  const rt = await runtimeWith({ from: tcp, to: tcp }, 600);
  try {
    rt.applyTable(tableFromUpstreams({ e: tcpUpstream('e', tcp, [echoPort]) }, []));
    const talking = await connectWhenOpen(tcp);
    let talkingClosed = false;
    talking.on('end', () => { talkingClosed = true; });
    talking.on('data', () => undefined);
    const timer = setInterval(() => talking.write('.'), 100);
    const silent = await connectWhenOpen(tcp);
    const t0 = Date.now();
    silent.resume();
    await once(silent, 'end'); // the balancer closed it (the client allows half-open, so 'end' is the sign)
    const silentMs = Date.now() - t0;
    clearInterval(timer);
    assert.ok(silentMs >= 500, `closed after ${silentMs} ms, not before the idle timeout`);
    assert.equal(talkingClosed, false, 'a connection with traffic every 100 ms outlived the silent one');
    talking.destroy();
  } finally {
    await rt.close();
    echo.close();
  }
});

test('connect retry: a dead server is skipped before any byte is relayed, then ejected; leastconn spreads open connections', async () => {
  const names: string[] = [];
  const mk = (name: string) => net.createServer((s) => { names.push(name); s.end(name); });
  const live = mk('live');
  const livePort = await listen(live);
  const deadPort = await freePort(); // nothing listens
  const [tcp, tcpLc] = [await freePort(), await freePort()];
  const onHoldA: net.Socket[] = [];
  const holdA = net.createServer((s) => { onHoldA.push(s); });
  const holdB = net.createServer(() => undefined);
  const [holdAPort, holdBPort] = [await listen(holdA), await listen(holdB)];
  const perServer = new Map<number, number>();
  for (const [srv, p] of [[holdA, holdAPort], [holdB, holdBPort]] as const) srv.on('connection', () => perServer.set(p, (perServer.get(p) ?? 0) + 1));
  const rt = await runtimeWith({ from: Math.min(tcp, tcpLc), to: Math.max(tcp, tcpLc) });
  const held: net.Socket[] = [];
  try {
    rt.applyTable(tableFromUpstreams({
      r: tcpUpstream('r', tcp, [deadPort, livePort]),
      lc: tcpUpstream('lc', tcpLc, [holdAPort, holdBPort], 'leastconn'),
    }, []));
    for (let i = 0; i < 6; i++) {
      const c = await connectWhenOpen(tcp);
      const r = collect(c);
      c.write('hi');
      await r.ended;
      assert.equal(r.text(), 'live', `connection ${i}`);
      c.destroy();
    }
    const dead = rt.status().find((u) => u.name === 'r')!.servers.find((s) => s.id === `127.0.0.1:${deadPort}`)!;
    assert.match(JSON.stringify(dead), /ECONNREFUSED/);
    // leastconn: 6 connections held open spread 3/3 (round robin would too; the next checks the count)
    const hold = async () => {
      const h = await connectWhenOpen(tcpLc);
      h.on('end', () => h.end()); // the server's end: this client ends too, so the connection closes
      held.push(h);
    };
    for (let i = 0; i < 6; i++) await hold();
    await until('6 held connections accepted', () => [...perServer.values()].reduce((a, b) => a + b, 0) === 6);
    assert.deepEqual([...perServer.values()].sort(), [3, 3]);
    // A closes its 3: the next 3 all go to A, the server with the fewest open connections (round robin would alternate)
    for (const s of onHoldA) s.destroy();
    const inflightOf = (p: number) => rt.status().find((u) => u.name === 'lc')!.servers.find((s) => s.id === `127.0.0.1:${p}`)!.inflight;
    await until('A\'s connections closed through the relay', () => inflightOf(holdAPort) === 0);
    for (let i = 0; i < 3; i++) {
      await hold();
      await until(`connection ${i} placed`, () => inflightOf(holdAPort) + inflightOf(holdBPort) === 4 + i);
    }
    assert.equal(inflightOf(holdAPort), 3);
    assert.equal(inflightOf(holdBPort), 3);
    await until('A accepted its 6th connection', () => perServer.get(holdAPort) === 6);
  } finally {
    for (const h of held) h.destroy();
    await rt.close();
    for (const s of [live, holdA, holdB]) s.close();
  }
});

test('ports follow the table: opened inside --tcp-ports only, closed when the service goes', async () => {
  const echo = net.createServer((s) => s.pipe(s));
  const echoPort = await listen(echo);
  const [inside, outside] = [await freePort(), await freePort()];
  const rt = await runtimeWith({ from: inside, to: inside });
  try {
    rt.applyTable(tableFromUpstreams({ in: tcpUpstream('in', inside, [echoPort]), out: tcpUpstream('out', outside, [echoPort]) }, []));
    const c = await connectWhenOpen(inside);
    c.destroy();
    await assert.rejects(new Promise((resolve, reject) => {
      const s = net.connect(outside, '127.0.0.1', () => { s.destroy(); resolve(undefined); });
      s.once('error', reject);
    }), /ECONNREFUSED/);
    rt.applyTable(tableFromUpstreams({}, []));
    await until('port closed', () => new Promise<boolean>((resolve) => {
      const s = net.connect(inside, '127.0.0.1', () => { s.destroy(); resolve(false); });
      s.once('error', () => resolve(true));
    }), 5000);
  } finally {
    await rt.close();
    echo.close();
  }
});
