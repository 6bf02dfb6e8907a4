// TCP services in reload mode: the real primary and 2 workers in `--mode reload`, the Consul double
// (or a real agent), Debian's redis-server behind proto=tcp + urlprefix-:<port>. The rendered config
// carries the TCP upstream (proto/listen); a generation serves it on the port; three instances scaled
// to one under redis-cli load give 0 failed commands. Across the generation swap an open connection
// keeps its server (the old generation still relays it) until that generation's drain ends at
// --drain-timeout, which closes it whatever its server; a port outside --tcp-ports stays shut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulRequest } from '../support/consul-http.js';
import { consulForTest, testScope } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { until, untilRetryingErrors } from '../support/poll.js';
import { redisCli, startRedis, type RedisServer } from '../support/redis.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** A raw RESP connection kept open: one inline command at a time. */
class RedisConnection {
  readonly socket: net.Socket;
  #buf = '';
  closed = false;
  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (d: string) => { this.#buf += d; });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => { this.closed = true; });
  }
  async command(line: string): Promise<string> {
    this.#buf = '';
    this.socket.write(`${line}\r\n`);
    return until(`reply to ${line}`, () => (this.#buf.includes('\r\n') && !this.#buf.startsWith('$') ? this.#buf : /^\$\d+\r\n[\s\S]*\r\n$/.test(this.#buf) ? this.#buf : false) || (this.closed ? Promise.reject(new Error('closed')) : undefined), 5000, 5);
  }
  async serverPort(): Promise<number> {
    const info = await this.command('INFO server');
    return Number(/tcp_port:(\d+)/.exec(info)?.[1]);
  }
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(true));
  });
}

test('reload mode serves proto=tcp: rendered listen, 3 redis scaled to 1 under load with 0 failed commands, open connections kept until the drain timeout', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const service = scope.name('redis');
  const outside = scope.name('outside');
  const dir = await mkdtemp(join(os.tmpdir(), 'tcp-reload-'));
  const redis: RedisServer[] = [];
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  const longLived: RedisConnection[] = [];
  const register = (id: string, name: string, port: number, tags: string[]) =>
    consulRequest(consul, 'PUT', '/v1/agent/service/register', { ID: scope.id(id), Name: name, Address: '127.0.0.1', Port: port, Tags: tags });
  try {
    for (let i = 0; i < 3; i++) redis.push(await startRedis());
    const tcpPort = await freePort();
    let outsidePort = await freePort();
    while (outsidePort === tcpPort) outsidePort = await freePort();
    for (let i = 0; i < 3; i++) assert.equal(await register(`r${i}`, service, redis[i].port, ['proto=tcp', `urlprefix-:${tcpPort}`]), 200);
    assert.equal(await register('o0', outside, redis[0].port, ['proto=tcp', `urlprefix-:${outsidePort}`]), 200);
    const configOut = join(dir, 'balancer.conf');
    const drainMs = 2500;
    primary = await startPrimary(balancerConfig(['--mode', 'reload', '--config-out', configOut, '--consul', consul.addr, '--listen', '127.0.0.1:0',
      '--admin', '127.0.0.1:0', '--workers', '2', '--consul-wait', '2s', '--log-level', 'warn', '--tcp-ports', `${tcpPort}-${tcpPort}`,
      '--drain-timeout', `${drainMs}ms`]), logger);
    await until('three redis instances served', () => (primary!.holder.current().upstreams[service]?.servers.length ?? 0) === 3, 10_000);
    const rendered = await readFile(configOut, 'utf8');
    assert.match(rendered, new RegExp(`upstream ${service} \\{\\n  proto tcp;\\n  listen ${tcpPort};\\n`), rendered);
    assert.match(rendered, new RegExp(`upstream ${outside} \\{\\n  proto tcp;\\n  listen ${outsidePort};\\n`), 'the renderer lists every TCP route; the workers apply --tcp-ports');
    assert.doesNotMatch(rendered, new RegExp(`route \\S+ ${service};`), 'no HTTP route for a TCP service');
    await untilRetryingErrors('the tcp port serving', async () => (await redisCli(tcpPort, ['PING'])) === 'PONG', 10_000, 50);
    assert.equal(await refused(outsidePort), true, 'a port outside --tcp-ports stays shut');

    // round robin across the three (new connection per command)
    for (let i = 0; i < 12; i++) assert.match(await redisCli(tcpPort, ['INCR', 'hits']), /^\d+$/);
    const hits = async (r: RedisServer) => Number((await redisCli(r.port, ['GET', 'hits'])) || 0);
    const before = await Promise.all(redis.map(hits));
    assert.equal(before.reduce((a, b) => a + b, 0), 12);
    assert.ok(before.every((h) => h > 0), `every instance took commands: ${before}`);

    // long-lived connections, one per backend, on the first generation
    const byBackend = new Map<number, RedisConnection>();
    for (let i = 0; i < 30 && byBackend.size < 3; i++) {
      const c = new RedisConnection(tcpPort);
      const p = await c.serverPort();
      if (byBackend.has(p)) c.socket.destroy();
      else { byBackend.set(p, c); longLived.push(c); }
    }
    assert.equal(byBackend.size, 3, 'a long-lived connection on each backend');

    let failures = 0;
    let ok = 0;
    const errors: string[] = [];
    let loadOn = true;
    const loop = async () => {
      while (loadOn) {
        try {
          await redisCli(tcpPort, ['INCR', 'load']);
          ok++;
        } catch (err) {
          failures++;
          if (errors.length < 5) errors.push((err as Error).message);
        }
      }
    };
    const loops = [loop(), loop()];
    await until('some load before the scale-down', () => ok >= 6, 20_000);
    const survivor = redis[0];
    assert.equal(await consulRequest(consul, 'PUT', `/v1/agent/service/deregister/${encodeURIComponent(scope.id('r1'))}`), 200);
    assert.equal(await consulRequest(consul, 'PUT', `/v1/agent/service/deregister/${encodeURIComponent(scope.id('r2'))}`), 200);
    await until('a generation with one instance', () => primary!.holder.current().upstreams[service]?.servers.length === 1, 10_000);
    const swappedAt = Date.now();
    assert.match(await readFile(configOut, 'utf8'), new RegExp(`listen ${tcpPort};\\n  server 127\\.0\\.0\\.1:${survivor.port} `));
    // right after the swap every open connection still reaches its own server (the old generation relays it)
    for (const [port, c] of byBackend) assert.equal(await c.serverPort(), port, 'an open connection keeps its server across the swap');
    // the old generation's drain ends at --drain-timeout: its connections close then, the survivor's too
    await until('the old generation\'s connections closed by its drain timeout', () => longLived.every((c) => c.closed), drainMs + 15_000);
    const closedAfterMs = Date.now() - swappedAt;
    const okAtDrain = ok;
    await until('load after the drain', () => ok >= okAtDrain + 6, 20_000);
    loadOn = false;
    await Promise.all(loops);
    assert.equal(failures, 0, `failed commands: ${errors.join(' | ')}`);
    process.stderr.write(`reload mode: ${ok} commands, 0 failed; open connections closed ${closedAfterMs} ms after the swap (--drain-timeout ${drainMs} ms)\n`);
    // after the scale-down, every new connection reaches the survivor
    const survivorBefore = await hits(survivor);
    for (let i = 0; i < 5; i++) await redisCli(tcpPort, ['INCR', 'hits']);
    assert.equal(await hits(survivor), survivorBefore + 5);
    assert.equal(await refused(outsidePort), true, 'still shut in the new generation');
  } finally {
    for (const c of longLived) c.socket.destroy();
    await primary?.stop();
    await scope.clean(consul);
    for (const r of redis) await r.stop();
    await consul.close();
    await rm(dir, { recursive: true, force: true });
  }
});
