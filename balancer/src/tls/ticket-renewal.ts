// Session tickets that renew on resumption. Node's built-in ticket callback answers "ok" to a ticket it
// can decrypt, never "renew", so OpenSSL sends no new ticket after a resumed TLS 1.3 handshake; a client
// that uses each ticket once (RFC 8446 C.4: browsers, wrk) then makes a full handshake every other
// connection. Node keeps a JS ticket-key callback for its own test (test-https-resume-after-renew,
// undocumented): the number it returns is OpenSSL's answer (src/crypto/crypto_context.cc TicketKeyCallback).
// Which context: OpenSSL asks the SSL's own SSL_CTX, and Node's SNI context lends only its certificate,
// key and chain (UseSNIContext, not SSL_set_SSL_CTX), so the server's context encrypts and decrypts
// every ticket: the callback is armed there, again whenever setSecureContext replaces that context.
import { randomBytes, randomFillSync } from 'node:crypto';
import type tls from 'node:tls';
import { TICKET_KEY_BYTES } from './tls-settings.js';

const PART = 16;
/** IVs per random fill */
const IV_POOL = 256;

/** OpenSSL's ticket-key callback results (ssl.h SSL_CTX_set_tlsext_ticket_key_cb) */
export const TICKET_NOT_OURS = 0;
export const TICKET_ISSUED = 1;
export const TICKET_RENEW = 2;

/** What Node's C++ reads from the callback's array: result, HMAC key, AES key, and for a new ticket its key name and IV. */
export type TicketKeyAnswer = readonly [result: number, hmac: Buffer, aes: Buffer, name?: Buffer, iv?: Buffer];

/**
 * Pure: the answer for a ticket under `keys` (48 bytes: name, HMAC, AES, node's setTicketKeys layout).
 * A new ticket carries the key name and `iv`; a presented ticket named by these keys resumes and is
 * renewed (every resumption hands out a fresh ticket, as nginx does for TLS 1.3); any other name is not
 * ours (older rotated keys included, as Node's own callback): a full handshake, which issues a new one.
 * The keys go with every answer: Node's C++ reads them even for a refusal.
 */
export function ticketKeyAnswer(keys: Buffer, name: Buffer, encrypt: boolean, iv: Buffer): TicketKeyAnswer {
  const keyName = keys.subarray(0, PART);
  const hmac = keys.subarray(PART, 2 * PART);
  const aes = keys.subarray(2 * PART, 3 * PART);
  if (encrypt) return [TICKET_ISSUED, hmac, aes, keyName, iv];
  return [keyName.equals(name) ? TICKET_RENEW : TICKET_NOT_OURS, hmac, aes];
}

/** The part of Node's native SecureContext this uses (absent in a Node without the hook). */
interface NativeTicketContext {
  enableTicketKeyCallback?: () => void;
  onticketkeycallback?: (name: Buffer, iv: Buffer, encrypt: boolean) => TicketKeyAnswer;
}

/** One worker's ticket keys, shared by all its listeners; `set` is the primary's rotation. */
export class RenewingTicketKeys {
  /** random until the primary's shared keys arrive (as each context's own keys were before) */
  #keys: Buffer = randomBytes(TICKET_KEY_BYTES);
  readonly #answer = (name: Buffer, iv: Buffer, encrypt: boolean): TicketKeyAnswer =>
    ticketKeyAnswer(this.#keys, name, encrypt, encrypt ? this.#nextIv() : iv);
  /** IVs drawn from one random fill per IV_POOL tickets (a randomFillSync per ticket was 1.6 % of a handshake's worker time) */
  readonly #ivPool = Buffer.alloc(PART * IV_POOL);
  #ivAt = this.#ivPool.length;

  /** a fresh 16-byte IV, each used once (Node copies it out before the next callback) */
  #nextIv(): Buffer {
    if (this.#ivAt === this.#ivPool.length) {
      randomFillSync(this.#ivPool);
      this.#ivAt = 0;
    }
    const iv = this.#ivPool.subarray(this.#ivAt, this.#ivAt + PART);
    this.#ivAt += PART;
    return iv;
  }

  set(keys: Buffer): void {
    if (keys.length === TICKET_KEY_BYTES) this.#keys = Buffer.from(keys);
  }

  /**
   * Arms the server's current context (call again after each setSecureContext: it makes a new one).
   * false: this Node has no ticket-key callback; the server keeps Node's own (no renewal).
   */
  arm(server: tls.Server): boolean {
    const native = (server as unknown as { _sharedCreds?: { context?: NativeTicketContext } })._sharedCreds?.context;
    if (native === undefined || typeof native.enableTicketKeyCallback !== 'function') return false;
    native.enableTicketKeyCallback();
    native.onticketkeycallback = this.#answer;
    return true;
  }
}
