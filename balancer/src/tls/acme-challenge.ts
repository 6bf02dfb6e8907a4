// ACME HTTP-01 answers (RFC 8555 section 8.3) on the plain listener, before routing: the token's key
// authorization lives in Consul KV, so whichever balancer instance the CA reaches can answer an
// order another instance placed.
import { request, type Dispatcher } from 'undici';
import type pino from 'pino';
import type { ClientExchange } from '../proxy/transport.js';

export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
/** RFC 8555: tokens are base64url, at least 128 bits; we accept up to 256 characters. */
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;

export interface ChallengeLookupOptions {
  readonly consulUrl: string;
  readonly consulToken?: string;
  /** --acme-kv-prefix, ending in '/' */
  readonly kvPrefix: string;
  readonly timeoutMs: number;
  /** the primary's capped Consul pool (ConsulBudget.dispatcher) */
  readonly dispatcher?: Dispatcher;
  /** runs each lookup inside the budget's read share (ConsulBudget.read); default: at once */
  readonly read?: <T>(signal: AbortSignal, fn: () => Promise<T>) => Promise<T>;
}

export function challengeKey(kvPrefix: string, token: string): string {
  return `${kvPrefix}challenges/${token}`;
}

/** The token of a challenge path, or undefined when the path is not one (or the token is malformed). */
export function acmeTokenOf(url: string): string | undefined {
  if (!url.startsWith(ACME_CHALLENGE_PREFIX)) return undefined;
  const token = url.slice(ACME_CHALLENGE_PREFIX.length);
  return isAcmeToken(token) ? token : undefined;
}

export function isAcmeToken(token: string): boolean {
  return TOKEN.test(token);
}

export type ChallengeLookup = (token: string) => Promise<string | undefined>;

export function createChallengeLookup(opts: ChallengeLookupOptions): ChallengeLookup {
  const read = opts.read ?? (<T>(_s: AbortSignal, fn: () => Promise<T>) => fn());
  return async (token) => {
    if (!isAcmeToken(token)) return undefined;
    const url = new URL(`/v1/kv/${challengeKey(opts.kvPrefix, token)}`, opts.consulUrl);
    url.searchParams.set('raw', '');
    const headers: Record<string, string> = {};
    if (opts.consulToken) headers['x-consul-token'] = opts.consulToken;
    // one deadline for the wait for a read slot and the request
    const signal = AbortSignal.timeout(opts.timeoutMs);
    return read(signal, async () => {
      const res = await request(url, { method: 'GET', headers, signal, dispatcher: opts.dispatcher });
      const text = await res.body.text();
      if (res.statusCode === 404) return undefined;
      if (res.statusCode !== 200) throw new Error(`consul answered ${res.statusCode}`);
      return text;
    });
  };
}

/** Answers a request whose target starts with ACME_CHALLENGE_PREFIX (any engine: a ClientExchange). */
export function answerAcmeChallenge(lookup: ChallengeLookup, client: ClientExchange, log: pino.Logger, closeConnection: boolean): void {
  const token = acmeTokenOf(client.target);
  const send = (status: number, body: string) => {
    if (client.headersSent) return;
    const bytes = Buffer.from(body);
    const headers = ['content-type', 'text/plain', 'content-length', String(bytes.length), 'cache-control', 'no-store'];
    if (closeConnection) headers.push('connection', 'close');
    client.writeHead(status, undefined, headers);
    client.end(client.method === 'HEAD' ? undefined : bytes);
  };
  if (token === undefined || (client.method !== 'GET' && client.method !== 'HEAD')) {
    send(404, 'no such challenge\n');
    return;
  }
  lookup(token).then(
    (answer) => {
      if (answer === undefined) send(404, 'no such challenge\n');
      else {
        log.info({ token }, 'ACME HTTP-01 challenge answered');
        send(200, answer);
      }
    },
    (err: Error) => {
      log.warn({ token, err: err.message }, 'ACME challenge lookup failed');
      send(503, 'challenge store unavailable\n');
    },
  );
}
