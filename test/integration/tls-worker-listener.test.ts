// One worker's TLS listeners in-process: no default and no match is a handshake alert logged once per
// name (rate-limited), a delta against another version is refused, shared ticket keys make a ticket
// of one listener resume on another, and rotated keys end resumption of older tickets; every resumed
// handshake hands out a new ticket, so a client using each ticket once resumes every connection.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import pino from 'pino';
import { randomBytes, X509Certificate } from 'node:crypto';
import { certDelta, certSnapshotOf, EMPTY_CERT_SNAPSHOT, fullDelta } from '../../balancer/src/tls/cert-snapshot.js';
import { validateCertificate } from '../../balancer/src/tls/certificate.js';
import { DEFAULT_TLS_CIPHERS } from '../../balancer/src/tls/tls-settings.js';
import { WorkerTls } from '../../balancer/src/tls/worker-tls.js';
import { makeTestCa, type Pem, type TestCa } from '../support/tls-certs.js';
import { handshake, LogSink, ticketChain, ticketsOf } from '../support/tls-client.js';

let ca: TestCa;
let a: Pem;
let b: Pem;
before(async () => {
  ca = await makeTestCa('worker');
  [a, b] = await Promise.all([ca.issue(['a.example.test']), ca.issue(['b.example.test'])]);
});
after(() => ca.close());

const opts = { listen: [{ host: '127.0.0.1', port: 0 }], ciphers: DEFAULT_TLS_CIPHERS, minVersion: 'TLSv1.2' as const, handshakeTimeoutMs: 5_000 };
const endSocket = (s: Socket) => s.end('HTTP/1.1 204 No Content\r\n\r\n');
const entry = (id: string, p: Pem) => validateCertificate({ id, source: 'kv', chainText: p.cert, keyText: p.key }, Date.now());

test('no default and no matching name: a handshake alert, one warning per name however often it is asked', async () => {
  const logs = new LogSink();
  const w = new WorkerTls(opts, pino({ level: 'info' }, logs));
  const snap = certSnapshotOf([entry('kv:a', a)], undefined);
  assert.equal(w.apply(fullDelta(snap)), true);
  const [addr] = await w.listen(endSocket);
  try {
    assert.equal((await handshake(addr.port, 'a.example.test')).fingerprint, new X509Certificate(a.leaf).fingerprint256);
    const alert = (err: Error & { code?: string }) => /ALERT_HANDSHAKE_FAILURE/.test(err.code ?? '') || /alert handshake failure/i.test(err.message);
    for (let i = 0; i < 3; i++) await assert.rejects(handshake(addr.port, 'nobody.example.test'), alert);
    await assert.rejects(handshake(addr.port, undefined), alert);
    assert.equal(logs.find({ level: 40, servername: null }).length, 1, 'no SNI and no default is logged too');
    const warned = logs.find({ level: 40, servername: 'nobody.example.test' });
    assert.equal(warned.length, 1, 'rate-limited to one line per name');
    // a delta against a version this worker does not have is refused (the primary then sends all)
    const next = certSnapshotOf([entry('kv:a', a), entry('kv:b', b)], 'a.example.test');
    assert.equal(w.apply(certDelta(EMPTY_CERT_SNAPSHOT, next)), false, 'a delta against the empty set is not for this worker');
    assert.equal(w.version(), snap.version, 'nothing changed');
    assert.equal(w.apply(certDelta(snap, next)), true, 'a delta against its version applies');
    assert.equal(w.version(), next.version);
    // the default now answers unknown names and no SNI
    assert.equal((await handshake(addr.port, undefined)).fingerprint, new X509Certificate(a.leaf).fingerprint256);
  } finally {
    w.close();
  }
});

test('shared ticket keys: a ticket of one listener resumes on another; rotation ends older tickets', async () => {
  const keys = randomBytes(48);
  const mk = async () => {
    const w = new WorkerTls(opts, pino({ level: 'silent' }));
    w.apply(fullDelta(certSnapshotOf([entry('kv:a', a)], undefined)));
    w.setTicketKeys(keys);
    const [addr] = await w.listen(endSocket);
    return { w, port: addr.port };
  };
  const one = await mk();
  const two = await mk();
  try {
    for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
      const first = await handshake(one.port, 'a.example.test', { maxVersion: v });
      assert.ok(first.session);
      assert.equal((await handshake(two.port, 'a.example.test', { maxVersion: v, session: first.session })).reused, true, `${v}: resumed on the other listener`);
    }
    const before = await handshake(one.port, 'a.example.test', { maxVersion: 'TLSv1.2' });
    one.w.setTicketKeys(randomBytes(48));
    assert.equal((await handshake(one.port, 'a.example.test', { maxVersion: 'TLSv1.2', session: before.session })).reused, false, 'rotated keys refuse the old ticket');
  } finally {
    one.w.close();
    two.w.close();
  }
});

test('a client that uses each ticket once (the newest) resumes every connection: each resumed handshake brings a new ticket, on one worker and across two', async () => {
  const keys = randomBytes(48);
  const mk = async () => {
    const w = new WorkerTls(opts, pino({ level: 'silent' }));
    w.apply(fullDelta(certSnapshotOf([entry('kv:a', a)], undefined)));
    w.setTicketKeys(keys);
    const [addr] = await w.listen(endSocket);
    return { w, port: addr.port };
  };
  const one = await mk();
  const two = await mk();
  // a swap replaces the server's own context: the renewal must survive it
  one.w.apply(fullDelta(certSnapshotOf([entry('kv:a', a), entry('kv:b', b)], 'b.example.test')));
  try {
    // TLS 1.3 only: a TLS 1.2 ticket may be offered again (RFC 5077), the test above covers it
    const v13 = { maxVersion: 'TLSv1.3' as const };
    const six = ['resumed+1', 'resumed+1', 'resumed+1', 'resumed+1', 'resumed+1', 'resumed+1'];
    assert.deepEqual(await ticketChain([one.port], 'a.example.test', 6, v13), six, 'one worker: each connection resumed with the last ticket and got one new ticket');
    assert.deepEqual(await ticketChain([one.port, two.port], 'a.example.test', 6, v13), six, 'two workers, alternating: likewise');
    // rotation as before: the old keys' tickets make a full handshake, which issues a ticket under the new keys
    const before = await ticketsOf(one.port, 'a.example.test', undefined, v13);
    one.w.setTicketKeys(randomBytes(48));
    const afterRotation = await ticketsOf(one.port, 'a.example.test', before.tickets.at(-1), v13);
    assert.equal(afterRotation.reused, false, 'rotated keys refuse the old TLS 1.3 ticket');
    assert.equal((await ticketsOf(one.port, 'a.example.test', afterRotation.tickets.at(-1), v13)).reused, true, 'the new keys\' ticket resumes');
  } finally {
    one.w.close();
    two.w.close();
  }
});
