// GET /metrics of a running balancer (primary + 1 worker, --h2c) after real calls of each protocol:
// HTTP/1.1, HTTP/2 (h2c, not gRPC) and gRPC (@grpc/grpc-js) are counted under
// balancer_service_requests_total{protocol="http"|"http2"|"grpc"}, and every gRPC call under
// balancer_service_grpc_responses_total{service, grpc_status} with the status its client got.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import pino from 'pino';
import { request } from 'undici';
import * as grpc from '@grpc/grpc-js';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulPut } from '../support/consul-http.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { startNamedBackend } from '../support/http-backend.js';
import { echoClient, startEchoServer, unary } from '../support/grpc-echo.js';
import { h2connect, h2request } from '../support/http2-client.js';
import { until } from '../support/poll.js';

interface ParsedMetric { name: string; type: string; metrics: { labels?: Record<string, string>; value?: string }[] }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => ParsedMetric[];
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const scope = testScope();
const WEB = scope.name('web');
const ECHO = scope.name('echo');

const register = (c: ConsulTarget, id: string, name: string, port: number, tags: string[] = []) =>
  consulPut(c, '/v1/agent/service/register', { ID: id, Name: name, Address: '127.0.0.1', Port: port, Tags: tags });

test('metrics: protocol label http / http2 / grpc and gRPC statuses, scraped after real calls', { timeout: 60_000 }, async () => {
  const consul = await consulForTest();
  const web = await startNamedBackend('w');
  const echo = await startEchoServer('e0');
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  const session = { close: () => undefined as void } as { close(): void };
  const client = { close: () => undefined as void } as { close(): void };
  try {
    await register(consul, scope.id('w'), WEB, web.port);
    await register(consul, scope.id('e'), ECHO, echo.port, ['proto=grpc']);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
      '--h2c', '--consul-wait', '2s', '--log-level', 'warn']), logger);
    await until('both services in the table', () => (primary!.holder.current().upstreams[WEB]?.servers.length === 1 &&
      primary!.holder.current().upstreams[ECHO]?.servers.length === 1) || undefined, 10_000);
    const port = primary.proxy.port;

    // HTTP/1.1: 3 requests
    for (let i = 0; i < 3; i++) {
      const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: WEB }, signal: AbortSignal.timeout(5_000) });
      assert.equal(res.statusCode, 200);
      await res.body.text();
    }
    // HTTP/2 with prior knowledge, not gRPC: 4 requests on one connection
    const h2 = await h2connect(`http://127.0.0.1:${port}`);
    session.close = () => h2.close();
    for (let i = 0; i < 4; i++) assert.equal((await h2request(h2, { ':method': 'GET', ':path': '/', ':authority': WEB })).status, 200);
    // gRPC: 5 OK, 2 FAILED_PRECONDITION (9) relayed from the server, 1 UNIMPLEMENTED (12) from the proxy (unknown service)
    const c = echoClient(port, ECHO);
    client.close = () => c.close();
    for (let i = 0; i < 5; i++) assert.equal((await unary(c, { text: 'x' })).server, 'e0');
    for (let i = 0; i < 2; i++) await assert.rejects(unary(c, { text: 'fail' }), (e: grpc.ServiceError) => e.code === grpc.status.FAILED_PRECONDITION);
    const nobody = echoClient(port, scope.name('nobody'));
    await assert.rejects(unary(nobody, { text: 'x' }), (e: grpc.ServiceError) => e.code === grpc.status.UNIMPLEMENTED);
    nobody.close();

    const admin = `http://127.0.0.1:${primary.admin.port}`;
    const scrape = async (): Promise<ParsedMetric[]> => {
      const res = await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(5_000) });
      assert.equal(res.status, 200);
      return parsePrometheus(await res.text());
    };
    const sum = (p: ParsedMetric[], name: string, labels: Record<string, string>): number =>
      (p.find((f) => f.name === name)?.metrics ?? []).filter((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v)).reduce((n, x) => n + Number(x.value), 0);
    const figures = (p: ParsedMetric[]) => ({
      webHttp: sum(p, 'balancer_service_requests_total', { service: WEB, protocol: 'http' }),
      webHttp2: sum(p, 'balancer_service_requests_total', { service: WEB, protocol: 'http2' }),
      webGrpc: sum(p, 'balancer_service_requests_total', { service: WEB, protocol: 'grpc' }),
      echoGrpc: sum(p, 'balancer_service_requests_total', { service: ECHO, protocol: 'grpc' }),
      echoHttp2: sum(p, 'balancer_service_requests_total', { service: ECHO, protocol: 'http2' }),
      unknownGrpc: sum(p, 'balancer_service_requests_total', { service: '_unknown', protocol: 'grpc' }),
      grpcOk: sum(p, 'balancer_service_grpc_responses_total', { service: ECHO, grpc_status: '0' }),
      grpcFailedPrecondition: sum(p, 'balancer_service_grpc_responses_total', { service: ECHO, grpc_status: '9' }),
      grpcEcho: sum(p, 'balancer_service_grpc_responses_total', { service: ECHO }),
      grpcUnimplemented: sum(p, 'balancer_service_grpc_responses_total', { service: '_unknown', grpc_status: '12' }),
      grpcWeb: sum(p, 'balancer_service_grpc_responses_total', { service: WEB }),
    });
    const want = { webHttp: 3, webHttp2: 4, webGrpc: 0, echoGrpc: 7, echoHttp2: 0, unknownGrpc: 1, grpcOk: 5, grpcFailedPrecondition: 2, grpcEcho: 7, grpcUnimplemented: 1, grpcWeb: 0 };
    // the worker flushes about once a second: wait for every figure to reach what was sent, then compare exactly
    const p = await until('calls counted', async () => {
      const p = await scrape();
      const f = figures(p);
      return f.webHttp >= 3 && f.webHttp2 >= 4 && f.echoGrpc >= 7 && f.grpcEcho >= 7 && f.grpcUnimplemented >= 1 ? p : undefined;
    }, 10_000);
    assert.deepEqual(figures(p), want);
    const family = p.find((f) => f.name === 'balancer_service_grpc_responses_total');
    assert.equal(family?.type, 'COUNTER');
  } finally {
    client.close();
    session.close();
    await primary?.stop();
    echo.kill();
    web.server.close();
    await consul.close();
  }
});
