// The ticket-key answer handed to Node's ticket callback: a new ticket under the current keys, a ticket
// of these keys resumed and renewed, any other key name (rotated away, another deployment) refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ticketKeyAnswer, TICKET_ISSUED, TICKET_NOT_OURS, TICKET_RENEW } from '../../balancer/src/tls/ticket-renewal.js';

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
