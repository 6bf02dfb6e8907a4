// End-to-end smuggling test: every corpus input goes through the balancer to a raw TCP upstream that
// records the bytes it gets. Whatever the balancer forwards must be complete, well-formed requests
// (checked with llhttp and with our parser, nothing left over), a request addressed to an unrouted
// Host ("evil", the corpus's smuggled request) never reaches the upstream, and an input the native
// parser refuses reaches the upstream not at all.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { RequestParser } from '../../balancer/src/http1/request-parser.js';
import { startProxy, upstreamSpec, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { SMUGGLING_CORPUS, VALID_REQUESTS } from '../support/http1-corpus.js';
import { parseRequests } from '../support/http1-collect.js';
import { llhttpParseRequests } from '../support/llhttp-reference.js';

interface RawUpstream {
  readonly port: number;
  /** bytes per upstream connection since the last take() */
  take(): Buffer[];
  close(): Promise<void>;
}

/** A TCP server that answers every complete request with a 200 and records all bytes per connection. */
async function rawUpstream(): Promise<RawUpstream> {
  const received = new Map<net.Socket, Buffer[]>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let rest: Buffer = Buffer.alloc(0);
    const parser = new RequestParser({ onRequestHead() {}, onRequestBody() {}, onRequestComplete() {} });
    socket.on('data', (chunk: Buffer) => {
      const list = received.get(socket) ?? [];
      list.push(Buffer.from(chunk));
      received.set(socket, list);
      let data: Buffer = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
      for (let guard = 0; data.length > 0 && guard < 100; guard++) {
        const n = parser.execute(data);
        if (n < 0) { socket.destroy(); return; }
        data = data.subarray(n);
        if (!parser.paused) break;
        parser.resume();
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
      rest = Buffer.from(data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    take(): Buffer[] {
      const out = [...received.values()].map((l) => Buffer.concat(l)).filter((b) => b.length > 0);
      received.clear();
      return out;
    },
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

/** Send `input`, half-close, resolve with the answer once the balancer closed the connection. */
function exchange(port: number, input: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no close within 10 s for ${JSON.stringify(input.toString('latin1').slice(0, 200))}`)); }, 10_000);
    socket.on('connect', () => socket.end(input));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')); });
  });
}

// both engines: the undici engine joined once its Upgrade tunnel waited for the 101 (before, it
// forwarded the bytes after an Upgrade head at once and the smuggled request reached the upstream)
const SMUGGLING_ENGINES = ENGINES;

for (const engine of SMUGGLING_ENGINES) describe(`balancer proxy: request smuggling end to end [${engine}]`, () => {
  let upstream: RawUpstream;
  let proxy: RunningProxy;

  before(async () => {
    upstream = await rawUpstream();
    proxy = await startProxy(engineOptions(engine));
    const server = { id: `127.0.0.1:${upstream.port}`, host: '127.0.0.1', port: upstream.port, weight: 1, maxFails: 0, failTimeoutMs: 10_000, down: false, backup: false };
    proxy.runtime.applyTable(tableFromUpstreams({ a: upstreamSpec('a', [server]), b: upstreamSpec('b', [server]) }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await upstream.close();
  });

  it('forwards only complete, well-formed requests; never the smuggled one; nothing for a refused input', async () => {
    const failures: string[] = [];
    for (const [name, text] of [...SMUGGLING_CORPUS, ...VALID_REQUESTS.map((v, i) => [`valid #${i}`, v] as const)]) {
      const input = Buffer.from(text, 'latin1');
      await exchange(proxy.port, input);
      const slices = upstream.take();
      const ours = parseRequests(input);
      if (engine === 'native' && ours.requests.length === 0 && ours.error !== undefined && slices.length > 0) {
        failures.push(`${name}: refused by our parser (${ours.error.code}) yet ${slices.reduce((n, s) => n + s.length, 0)} bytes reached the upstream`);
      }
      for (const slice of slices) {
        const ref = llhttpParseRequests(slice);
        const again = parseRequests(slice);
        // llhttp judges well-formedness; on the native engine our own (stricter) parser must agree
        const oursBad = engine === 'native' && (again.error !== undefined || again.leftover !== 0 || ref.messages.length !== again.requests.length);
        if (ref.error !== undefined || oursBad || ref.messages.length === 0) {
          failures.push(`${name}: upstream got malformed bytes (llhttp ${ref.error ?? 'ok'} ${ref.messages.length} msgs, ours ${again.error?.code ?? 'ok'} ${again.requests.length} msgs, leftover ${again.leftover}): ${JSON.stringify(slice.toString('latin1'))}`);
          continue;
        }
        for (const m of ref.messages) {
          const at = m.rawHeaders.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === 'host');
          const host = at < 0 ? undefined : m.rawHeaders[at + 1];
          if (host === 'evil' || m.target.includes('smuggled')) failures.push(`${name}: the smuggled request reached the upstream: ${JSON.stringify(slice.toString('latin1'))}`);
        }
      }
    }
    assert.deepEqual(failures, []);
  });
});
