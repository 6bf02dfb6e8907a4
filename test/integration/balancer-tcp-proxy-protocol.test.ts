// PROXY protocol on TCP services through one worker runtime: a trusted sender (--proxy-protocol-from
// 127.0.0.1) opens with a v1 or v2 header; its address is the client's for the access rules and is
// what the backend's own v2 header (proxy_protocol=v2) carries; a malformed or missing header from
// the trusted peer is closed; an untrusted peer (127.0.0.2) sends none and is itself the client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pino from 'pino';
import { createWorkerRuntime } from '../../balancer/src/proxy/proxy-runtime.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { UpstreamSpec } from '../../balancer/src/routing/types.js';
import { decodeProxyHeader, encodeV1, encodeV2 } from '../../balancer/src/l4/proxy-protocol.js';
import { freePort } from '../support/free-port.js';
import { untilRetryingErrors } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** A backend that decodes the PROXY header it is sent and answers with the source it names, then echoes. */
function headerReader(): net.Server {
  return net.createServer((s) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const v = decodeProxyHeader(buf);
      if (v.state === 'need-more') return;
      s.off('data', onData);
      s.write(v.state === 'done' && v.header.kind === 'proxy' ? `${v.header.addresses.source}:${v.header.addresses.sourcePort}|` : `no header|`);
      if (v.state === 'done') s.write(buf.subarray(v.length));
      s.pipe(s);
    };
    s.on('data', onData);
    s.on('error', () => undefined);
  });
}

function exchange(port: number, from: string, first: Buffer | undefined, payload: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from }, () => {
      if (first) s.write(first);
      s.write(payload);
    });
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      text += d;
      if (text.endsWith(payload)) { s.destroy(); resolve(text); }
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(text === '' ? 'closed' : text));
    setTimeout(() => s.destroy(), 5000).unref();
  });
}

test('PROXY protocol: trusted v1/v2 senders name the client, the backend gets a v2 header, rules use the carried address', async () => {
  const backend = headerReader();
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const bport = (backend.address() as net.AddressInfo).port;
  const tcp = await freePort();
  const rt = createWorkerRuntime({
    logger, accessLog: false, maxConnectionsPerServer: 8,
    timeouts: { connectMs: 1000, headersMs: 5000, idleMs: 5000, clientKeepAliveMs: 1000 },
    l4: { tcpPorts: { from: tcp, to: tcp }, tcpHost: '127.0.0.1', idleMs: 60_000, drainMs: 1000, helloTimeoutMs: 500, proxyProtocolFrom: ['127.0.0.1/32'] },
  });
  try {
    const spec: UpstreamSpec = {
      name: 'pp', algorithm: 'roundrobin', origin: 'admin', retry: DEFAULT_TABLE_DEFAULTS.retry, protocol: 'tcp', listen: [{ port: tcp }], proxyProtocol: 'v2',
      servers: [{ id: `127.0.0.1:${bport}`, host: '127.0.0.1', port: bport, weight: 1, maxFails: 1, failTimeoutMs: 10_000, down: false, backup: false }],
      policy: { access: { deny: ['203.0.113.66/32'] } },
    };
    rt.applyTable(tableFromUpstreams({ pp: spec }, []));
    const v1 = encodeV1({ source: '203.0.113.7', sourcePort: 40001, destination: '127.0.0.1', destinationPort: tcp });
    assert.equal(await untilRetryingErrors('port open', async () => {
      const r = await exchange(tcp, '127.0.0.1', v1, 'hello');
      if (r === 'closed') throw new Error('closed');
      return r;
    }, 5000, 50), '203.0.113.7:40001|hello', 'v1 in: the backend\'s v2 header carries the client from the v1 header');
    const v2 = encodeV2({ source: '2001:db8::9', sourcePort: 5, destination: '::1', destinationPort: tcp });
    assert.equal(await exchange(tcp, '127.0.0.1', v2, 'six'), '2001:db8::9:5|six');
    assert.equal(await exchange(tcp, '127.0.0.1', encodeV1({ source: '203.0.113.66', sourcePort: 1, destination: '127.0.0.1', destinationPort: tcp }), 'x'), 'closed', 'deny= applies to the carried address');
    assert.equal(await exchange(tcp, '127.0.0.1', Buffer.from('PROXY TCP4 nonsense\r\n'), 'x'), 'closed', 'malformed header from a trusted peer');
    assert.equal(await exchange(tcp, '127.0.0.1', undefined, 'no header'), 'closed', 'a trusted peer must send one');
    const untrusted = await exchange(tcp, '127.0.0.2', undefined, 'plain');
    assert.match(untrusted, /^127\.0\.0\.2:\d+\|plain$/, 'an untrusted peer is the client itself, nothing is read from it');
  } finally {
    await rt.close();
    backend.close();
  }
});
