// The ticket-key answer handed to Node's ticket callback: a new ticket under the current keys, a ticket
// of these keys resumed and renewed, any other key name (rotated away, another deployment) refused;
// IVs unique across the pool they are drawn from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type tls from 'node:tls';
import { RenewingTicketKeys, ticketKeyAnswer, TICKET_ISSUED, TICKET_NOT_OURS, TICKET_RENEW, type TicketKeyAnswer } from '../../balancer/src/tls/ticket-renewal.js';

const keys = Buffer.concat([Buffer.alloc(16, 'N'), Buffer.alloc(16, 'H'), Buffer.alloc(16, 'A')]);
const iv = Buffer.alloc(16, 'I');
const hmac = Buffer.alloc(16, 'H');
const aes = Buffer.alloc(16, 'A');

test('ticketKeyAnswer: scenario table', () => {
  const cases = [
    { what: 'a new ticket: current key name and the given IV', name: Buffer.alloc(16, 0), encrypt: true, want: [TICKET_ISSUED, hmac, aes, Buffer.alloc(16, 'N'), iv] },
    { what: 'a ticket of these keys: resumed and renewed', name: Buffer.alloc(16, 'N'), encrypt: false, want: [TICKET_RENEW, hmac, aes] },
    { what: 'an older key name: not ours, keys still given (Node reads them)', name: Buffer.alloc(16, 'O'), encrypt: false, want: [TICKET_NOT_OURS, hmac, aes] },
    { what: 'a name differing in its last byte: not ours', name: Buffer.concat([Buffer.alloc(15, 'N'), Buffer.from('M')]), encrypt: false, want: [TICKET_NOT_OURS, hmac, aes] },
  ];
  for (const c of cases) assert.deepEqual(ticketKeyAnswer(keys, c.name, c.encrypt, iv), c.want, c.what);
});

test('RenewingTicketKeys: every new ticket gets its own IV, across refills of the IV pool; a ticket it issued is renewed', () => {
  const keys = new RenewingTicketKeys();
  let callback: ((name: Buffer, iv: Buffer, encrypt: boolean) => TicketKeyAnswer) | undefined;
  // the shape of node's native SecureContext this uses (a real one: the integration tests)
  const fake = { _sharedCreds: { context: { enableTicketKeyCallback: () => undefined, set onticketkeycallback(f: typeof callback) { callback = f; } } } };
  assert.equal(keys.arm(fake as unknown as tls.Server), true);
  assert.ok(callback !== undefined);
  const ivs = new Set<string>();
  let issued: TicketKeyAnswer | undefined;
  for (let i = 0; i < 1000; i++) {
    issued = callback(Buffer.alloc(16), Buffer.alloc(16), true);
    assert.equal(issued[0], TICKET_ISSUED);
    assert.equal(issued[4]?.length, 16);
    ivs.add((issued[4] as Buffer).toString('hex'));
  }
  assert.equal(ivs.size, 1000, 'no IV twice');
  assert.equal(callback(issued?.[3] as Buffer, Buffer.alloc(16), false)[0], TICKET_RENEW);
  assert.equal(keys.arm({} as tls.Server), false, 'a server without the native hook: not armed');
});
