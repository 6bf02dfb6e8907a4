// certificateExpiries: one figure per name a handshake can ask for, from the certificate SNI would
// pick for it (admin over KV over directory, then the later expiry).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { certificateExpiries } from '../../balancer/src/tls/cert-expiry.js';
import type { CertEntry } from '../../balancer/src/tls/certificate.js';

function cert(id: string, source: CertEntry['source'], names: string[], notAfter: string): CertEntry {
  return { id, source, names, notAfter, notBefore: '2026-01-01T00:00:00.000Z', certPem: '', keyPem: '', fingerprint: id, serial: '1', subject: '', issuer: '' };
}

test('every name of every loaded certificate, with the expiry of the one serving it', () => {
  const got = certificateExpiries([
    cert('dir:/c/a.pem', 'dir', ['a.example', 'www.a.example'], '2027-03-01T00:00:00.000Z'),
    cert('kv:a', 'kv', ['a.example'], '2027-01-01T00:00:00.000Z'),
    cert('admin:w', 'admin', ['*.b.example'], '2027-06-01T00:00:00.000Z'),
    cert('dir:/c/old.pem', 'dir', ['c.example'], '2026-12-20T00:00:00.000Z'),
    cert('dir:/c/new.pem', 'dir', ['c.example'], '2027-12-20T00:00:00.000Z'),
  ]);
  assert.deepEqual(got, [
    { name: '*.b.example', notAfterMs: Date.parse('2027-06-01T00:00:00.000Z'), source: 'admin' },
    { name: 'a.example', notAfterMs: Date.parse('2027-01-01T00:00:00.000Z'), source: 'kv' },
    { name: 'c.example', notAfterMs: Date.parse('2027-12-20T00:00:00.000Z'), source: 'dir' },
    { name: 'www.a.example', notAfterMs: Date.parse('2027-03-01T00:00:00.000Z'), source: 'dir' },
  ]);
  assert.deepEqual(certificateExpiries([]), []);
});
