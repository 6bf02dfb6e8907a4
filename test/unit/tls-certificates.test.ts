// Pure TLS core: validation before use, SNI selection (exact, one-label wildcard, default), the
// snapshot delta protocol and its readable diff, directory pairing and KV grouping.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CertificateError, validateCertificate, dnsNames, MAX_PEM_BYTES, type CertEntry } from '../../balancer/src/tls/certificate.js';
import { buildCertIndex, selectCertificate, wildcardFor } from '../../balancer/src/tls/sni.js';
import { applyCertDelta, certDelta, certSnapshotOf, diffCertSnapshots, diffText, fullDelta, EMPTY_CERT_SNAPSHOT } from '../../balancer/src/tls/cert-snapshot.js';
import { pairDirectory } from '../../balancer/src/tls/dir-pairing.js';
import { kvCertificates } from '../../balancer/src/tls/kv-pairs.js';
import { acmeTokenOf } from '../../balancer/src/tls/acme-challenge.js';
import { makeTestCa, type Pem, type TestCa } from '../support/tls-certs.js';

let ca: TestCa;
let a: Pem;
let b: Pem;
let wild: Pem;
let dflt: Pem;
let expired: Pem;
let stray: string;
const now = Date.now();

before(async () => {
  ca = await makeTestCa('unit');
  [a, b, wild, dflt, expired] = await Promise.all([
    ca.issue(['a.example.test']), ca.issue(['b.example.test', 'www.b.example.test']), ca.issue(['*.wild.example.test']),
    ca.issue(['default.example.test']), ca.issue(['old.example.test'], { days: -1 }),
  ]);
  stray = await ca.strayKey();
});
after(() => ca.close());

const v = (id: string, p: Pem, source: CertEntry['source'] = 'kv', key = p.key) => validateCertificate({ id, source, chainText: p.cert, keyText: key }, now);

function refused(fn: () => unknown, code: string): void {
  const keyLines = [a.key, b.key, stray].map((k) => k.split('\n')[1]);
  assert.throws(fn, (err: unknown) => err instanceof CertificateError && err.code === code && keyLines.every((l) => !err.message.includes(l)));
}

test('a valid chain with its key: names from the SAN, fingerprint, dates', () => {
  const e = v('kv:a', b);
  assert.deepEqual(e.names, ['b.example.test', 'www.b.example.test']);
  assert.match(e.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.ok(Date.parse(e.notAfter) > now);
  assert.equal(e.certPem.match(/BEGIN CERTIFICATE/g)?.length, 2);
  // one combined file: chain and key in one text
  assert.equal(validateCertificate({ id: 'x', source: 'dir', chainText: a.cert + a.key, keyText: '' }, now).names[0], 'a.example.test');
});

test('refused: wrong key, expired, garbage, no key, oversized, chain out of order; messages never carry the key', () => {
  refused(() => v('kv:a', a, 'kv', stray), 'ERR_CERT_KEY_MISMATCH');
  refused(() => v('kv:a', a, 'kv', b.key), 'ERR_CERT_KEY_MISMATCH');
  refused(() => v('kv:old', expired), 'ERR_CERT_EXPIRED');
  refused(() => validateCertificate({ id: 'g', source: 'kv', chainText: 'hello, not a certificate', keyText: a.key }, now), 'ERR_CERT_NO_CERTIFICATE');
  refused(() => validateCertificate({ id: 'g', source: 'kv', chainText: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', keyText: a.key }, now), 'ERR_CERT_PARSE');
  refused(() => validateCertificate({ id: 'g', source: 'kv', chainText: a.cert, keyText: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }, now), 'ERR_CERT_KEY_PARSE');
  refused(() => validateCertificate({ id: 'g', source: 'kv', chainText: a.cert, keyText: '' }, now), 'ERR_CERT_NO_KEY');
  refused(() => validateCertificate({ id: 'g', source: 'kv', chainText: a.cert + 'x'.repeat(MAX_PEM_BYTES), keyText: a.key }, now), 'ERR_CERT_TOO_LARGE');
  refused(() => validateCertificate({ id: 'g', source: 'kv', chainText: ca.cert + a.leaf, keyText: a.key }, now), 'ERR_CERT_KEY_MISMATCH');
  refused(() => validateCertificate({ id: 'g', source: 'kv', chainText: a.leaf + b.leaf, keyText: a.key }, now), 'ERR_CERT_CHAIN_ORDER');
  // not yet valid: "now" a day in the past
  assert.throws(() => validateCertificate({ id: 'g', source: 'kv', chainText: a.cert, keyText: a.key }, now - 2 * 86_400_000), (e: unknown) => (e as CertificateError).code === 'ERR_CERT_NOT_YET_VALID');
});

test('dnsNames reads DNS entries only, lower case', () => {
  assert.deepEqual(dnsNames('DNS:A.Example.TEST, IP Address:127.0.0.1, DNS:*.w.test'), ['a.example.test', '*.w.test']);
  assert.deepEqual(dnsNames(undefined), []);
});

test('SNI selection: exact, then one-label wildcard, then default; no SNI gets the default', () => {
  const certs = [v('kv:a', a), v('kv:b', b), v('kv:w', wild), v('dir:/d', dflt, 'dir')];
  const idx = buildCertIndex(certs, 'default.example.test');
  const pick = (n: string | undefined) => selectCertificate(idx, n)?.id;
  const table: [string | undefined, string | undefined][] = [
    ['a.example.test', 'kv:a'], ['A.EXAMPLE.TEST.', 'kv:a'], ['www.b.example.test', 'kv:b'],
    ['x.wild.example.test', 'kv:w'], ['wild.example.test', 'dir:/d'], ['y.x.wild.example.test', 'dir:/d'],
    ['unknown.test', 'dir:/d'], [undefined, 'dir:/d'], ['', 'dir:/d'],
  ];
  for (const [name, want] of table) assert.equal(pick(name), want, `servername ${name}`);
  const noDefault = buildCertIndex(certs, undefined);
  assert.equal(selectCertificate(noDefault, 'unknown.test'), undefined);
  assert.equal(selectCertificate(noDefault, undefined), undefined);
  assert.equal(wildcardFor('localhost'), undefined);
  // one name claimed twice: admin over kv over dir
  const twice = buildCertIndex([v('dir:/x', a, 'dir'), v('admin:a', a, 'admin'), v('kv:a', a)], undefined);
  assert.equal(selectCertificate(twice, 'a.example.test')?.id, 'admin:a');
});

test('snapshot deltas: applied against their base, refused against another, version is content', () => {
  const s1 = certSnapshotOf([v('kv:a', a), v('kv:b', b)], undefined);
  const s2 = certSnapshotOf([v('kv:a', a), v('kv:w', wild)], 'a.example.test');
  assert.equal(certSnapshotOf([v('kv:b', b), v('kv:a', a)], undefined).version, s1.version);
  const d = certDelta(s1, s2);
  assert.deepEqual(d.upsert.map((c) => c.id), ['kv:w']);
  assert.deepEqual(d.remove, ['kv:b']);
  assert.equal(applyCertDelta(s1, d)?.version, s2.version);
  assert.equal(applyCertDelta(EMPTY_CERT_SNAPSHOT, d), undefined);
  assert.equal(applyCertDelta(EMPTY_CERT_SNAPSHOT, fullDelta(s2))?.version, s2.version);
  const text = diffText(diffCertSnapshots(s1, s2));
  assert.match(text, /^\+ kv:w \[\*\.wild\.example\.test\] sha256=[0-9A-F]{12} until /m);
  assert.match(text, /^- kv:b \[b\.example\.test www\.b\.example\.test\]/m);
  assert.match(text, /^default \(none\) -> a\.example\.test$/m);
  assert.ok(!text.includes('PRIVATE'));
  const s3 = certSnapshotOf([v('kv:a', b), v('kv:w', wild)], 'a.example.test');
  assert.match(diffText(diffCertSnapshots(s2, s3)), /^~ kv:a \[a\.example\.test\] sha256=\w+ until .* -> sha256=\w+ until /m);
});

test('directory pairing: chain with the matching key file, names from the certificate, problems per file', () => {
  const { entries, problems } = pairDirectory([
    { path: '/d/zzz-misnamed.pem', text: a.cert },
    { path: '/d/key-for-a', text: a.key },
    { path: '/d/combined.pem', text: b.cert + b.key },
    { path: '/d/stray.key', text: stray },
    { path: '/d/garbage.pem', text: 'not pem at all' },
    { path: '/d/old.pem', text: expired.cert + expired.key },
    { path: '/d/wild.crt', text: wild.cert },
  ], now);
  assert.deepEqual(entries.map((e) => [e.id, e.names[0]]).sort(), [['dir:/d/combined.pem', 'b.example.test'], ['dir:/d/zzz-misnamed.pem', 'a.example.test']]);
  assert.deepEqual(problems.map((p) => [p.path, p.code]).sort(), [
    ['/d/garbage.pem', 'ERR_CERT_NO_PEM'], ['/d/old.pem', 'ERR_CERT_EXPIRED'], ['/d/wild.crt', 'ERR_CERT_KEY_MISMATCH'],
  ]);
});

test('KV entries: <prefix><name>/cert and /key grouped, others ignored, bad pairs reported by name', () => {
  const kv = (Key: string, text: string | null) => ({ Key, Value: text === null ? null : Buffer.from(text).toString('base64'), ModifyIndex: 1 });
  const { entries, problems, names } = kvCertificates('certs/', [
    kv('certs/a.example.test/cert', a.cert), kv('certs/a.example.test/key', a.key),
    kv('certs/bad/cert', b.cert), kv('certs/bad/key', stray),
    kv('certs/readme', 'x'), kv('other/x/cert', a.cert), kv('certs/empty/cert', null),
  ], now);
  assert.deepEqual(entries.map((e) => e.id), ['kv:a.example.test']);
  assert.deepEqual(problems.map((p) => [p.name, p.code]), [['bad', 'ERR_CERT_KEY_MISMATCH'], ['empty', 'ERR_CERT_NO_CERTIFICATE']]);
  assert.deepEqual([...names].sort(), ['a.example.test', 'bad', 'empty']);
});

test('ACME challenge paths: only well-formed tokens', () => {
  assert.equal(acmeTokenOf('/.well-known/acme-challenge/abcdefghijklmnop_-XYZ'), 'abcdefghijklmnop_-XYZ');
  for (const bad of ['/.well-known/acme-challenge/', '/.well-known/acme-challenge/short', '/.well-known/acme-challenge/abcdefghijklmnopq/../x', '/x']) {
    assert.equal(acmeTokenOf(bad), undefined, bad);
  }
});
