// TCP services end to end: the real primary and 2 workers, the Consul double (or a real agent),
// Debian's redis-server behind proto=tcp + urlprefix-:<port>. Three instances take traffic, two
// are deregistered under load (0 failed commands), long-lived connections to them are closed after
// the drain timeout while the one to the survivor goes on. Raw sockets: half-close both ways, the
// idle timeout, connect retry past a dead server, and a port outside --tcp-ports staying shut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import pino from 'pino';
import { request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { until, untilRetryingErrors } from '../support/poll.js';
import { redisCli, startRedis, type RedisServer } from '../support/redis.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

async function consulCall(consul: ConsulTarget, method: string, path: string, body?: string): Promise<void> {
  const headers: Record<string, string> = process.env.CONSUL_HTTP_TOKEN ? { 'x-consul-token': process.env.CONSUL_HTTP_TOKEN } : {};
  const res = await request(`${consul.url}${path}`, { method: method as 'PUT', headers, body, signal: AbortSignal.timeout(5000) });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `${method} ${path}: ${text}`);
}
const register = (c: ConsulTarget, id: string, name: string, port: number, tags: string[]) =>
  consulCall(c, 'PUT', '/v1/agent/service/register', JSON.stringify({ ID: id, Name: name, Address: '127.0.0.1', Port: port, Tags: tags }));
const deregister = (c: ConsulTarget, id: string) => consulCall(c, 'PUT', `/v1/agent/service/deregister/${encodeURIComponent(id)}`);

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

test('redis behind proto=tcp: 3 instances scaled to 1 under load, 0 failed commands, departed servers drained', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const service = scope.name('redis');
  const redis: RedisServer[] = [];
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  const longLived: RedisConnection[] = [];
  try {
    for (let i = 0; i < 3; i++) redis.push(await startRedis());
    const tcpPort = await freePort();
    const tags = ['proto=tcp', `urlprefix-:${tcpPort}`];
    for (let i = 0; i < 3; i++) await register(consul, scope.id(`r${i}`), service, redis[i].port, tags);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2',
      '--consul-wait', '2s', '--log-level', 'warn', '--tcp-ports', `${tcpPort}-${tcpPort}`, '--tcp-drain-timeout', '1500ms']), logger);
    await until('three redis instances in the table', () => (primary!.holder.current().upstreams[service]?.servers.length ?? 0) === 3, 8000);
    await untilRetryingErrors('the tcp port serving', async () => (await redisCli(tcpPort, ['PING'])) === 'PONG', 10_000, 50);

    // round robin across the three (new connection per command)
    for (let i = 0; i < 12; i++) assert.match(await redisCli(tcpPort, ['INCR', 'hits']), /^\d+$/);
    const hits = async (r: RedisServer) => Number((await redisCli(r.port, ['GET', 'hits'])) || 0);
    const before = await Promise.all(redis.map(hits));
    assert.equal(before.reduce((a, b) => a + b, 0), 12);
    assert.ok(before.every((h) => h > 0), `every instance took commands: ${before}`);

    // long-lived connections, one per backend (opened until each backend has one)
    const byBackend = new Map<number, RedisConnection>();
    for (let i = 0; i < 30 && byBackend.size < 3; i++) {
      const c = new RedisConnection(tcpPort);
      const p = await c.serverPort();
      if (byBackend.has(p)) c.socket.destroy();
      else { byBackend.set(p, c); longLived.push(c); }
    }
    assert.equal(byBackend.size, 3, 'a long-lived connection on each backend');

    // load: two loops of redis-cli, a new connection per command, during the scale-down and the drain
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
    await deregister(consul, scope.id('r1'));
    await deregister(consul, scope.id('r2'));
    await until('one instance left in the table', () => primary!.holder.current().upstreams[service]?.servers.length === 1, 8000);
    const gone = [redis[1].port, redis[2].port].map((p) => byBackend.get(p)!);
    // the departed servers' connections still work inside the drain window, then are closed
    await until('connections to departed servers closed by the drain', () => gone.every((c) => c.closed), 10_000);
    const okAtDrain = ok;
    await until('load after the drain', () => ok >= okAtDrain + 6, 20_000);
    loadOn = false;
    await Promise.all(loops);
    assert.equal(failures, 0, `failed commands: ${errors.join(' | ')}`);
    assert.equal(await byBackend.get(survivor.port)!.command('PING'), '+PONG\r\n', 'the survivor\'s connection goes on');
    // after the scale-down, every new connection reaches the survivor
    const survivorBefore = await hits(survivor);
    for (let i = 0; i < 5; i++) await redisCli(tcpPort, ['INCR', 'hits']);
    assert.equal(await hits(survivor), survivorBefore + 5);
  } finally {
    for (const c of longLived) c.socket.destroy();
    await primary?.stop();
    await scope.clean(consul);
    for (const r of redis) await r.stop();
    await consul.close();
  }
});
