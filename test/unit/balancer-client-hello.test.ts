// The ClientHello SNI reader (pure), on real hellos made by node's TLS client: the name, every
// prefix 'need-more', the hello re-framed into two records, and corruptions 'bad', never a throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readClientHello } from '../../balancer/src/l4/client-hello.js';

async function captureHello(servername: string | undefined): Promise<Buffer> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const got = new Promise<Buffer>((resolve) => srv.once('connection', (s) => s.once('data', (d: Buffer) => { resolve(d); s.destroy(); })));
  const c = tls.connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), rejectUnauthorized: false });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  srv.close();
  return hello;
}

test('a real hello: the name; every prefix needs more; two records; no name', async () => {
  const hello = await captureHello('Db.Example.COM');
  assert.deepEqual(readClientHello(hello), { state: 'done', serverName: 'db.example.com' });
  for (let n = 0; n < hello.length; n++) assert.equal(readClientHello(hello.subarray(0, n)).state, 'need-more', `prefix ${n}`);
  // the same handshake message split over two records
  const body = hello.subarray(5);
  const cut = 40;
  const rec = (b: Buffer) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, b.length >> 8, b.length & 0xff]), b]);
  const two = Buffer.concat([rec(body.subarray(0, cut)), rec(body.subarray(cut))]);
  assert.deepEqual(readClientHello(two), { state: 'done', serverName: 'db.example.com' });
  for (let n = 0; n < two.length; n++) assert.equal(readClientHello(two.subarray(0, n)).state, 'need-more', `two records, prefix ${n}`);
  assert.deepEqual(readClientHello(await captureHello(undefined)), { state: 'done' });
});

test('not a hello: bad at once; every single-byte corruption is a verdict, never a throw', async () => {
  for (const text of ['GET / HTTP/1.1\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n', '\x16\x02\x00\x00\x01']) {
    assert.equal(readClientHello(Buffer.from(text, 'latin1')).state, 'bad', JSON.stringify(text));
  }
  const hello = await captureHello('a.example');
  // a handshake message that is not a ClientHello
  const sh = Buffer.from(hello);
  sh[5] = 0x02;
  assert.equal(readClientHello(sh).state, 'bad');
  for (let i = 0; i < hello.length; i++) {
    for (const v of [0x00, 0xff]) {
      const c = Buffer.from(hello);
      c[i] = v;
      const r = readClientHello(c);
      assert.ok(['done', 'bad', 'need-more'].includes(r.state));
    }
  }
});
