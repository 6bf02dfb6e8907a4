// ACME HTTP-01 lookups of the workers, answered by the primary. A worker that looked a token up in
// Consul KV itself opened connections of its own to the agent, outside --consul-max-conns (N workers,
// N pools); so the worker asks the primary over IPC, and the primary reads KV inside its connection
// budget (a plain read in the read share). The CA's validators often ask for one token several times
// at once (multi-perspective validation): the primary runs one lookup per token at a time.
import type { ChallengeLookup } from './acme-challenge.js';

/** What the worker needs: how long to wait for the primary's answer. */
export interface ChallengeRelayOptions {
  readonly timeoutMs: number;
}

export interface ChallengeRequest {
  readonly type: 'acme-challenge';
  readonly seq: number;
  readonly token: string;
}

export interface ChallengeAnswer {
  readonly type: 'acme-challenge-answer';
  readonly seq: number;
  /** the key authorization; absent with found false (no such token) or with error */
  readonly keyAuthorization?: string;
  readonly found: boolean;
  /** the primary's lookup failed (Consul down, timeout): the worker answers 503 */
  readonly error?: string;
}

/** a request is refused at once when this many are waiting (a flood of challenge paths) */
const MAX_PENDING = 256;

/** The worker's side: a ChallengeLookup that asks the primary; answers arrive through onAnswer. */
export class ChallengeRelayClient {
  readonly #send: (msg: ChallengeRequest) => void;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, { resolve: (v: string | undefined) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #seq = 0;

  constructor(opts: ChallengeRelayOptions, send: (msg: ChallengeRequest) => void) {
    this.#send = send;
    this.#timeoutMs = opts.timeoutMs;
  }

  readonly lookup: ChallengeLookup = (token) => new Promise<string | undefined>((resolve, reject) => {
    if (this.#pending.size >= MAX_PENDING) {
      reject(new Error(`${MAX_PENDING} challenge lookups already waiting for the primary`));
      return;
    }
    const seq = ++this.#seq;
    const timer = setTimeout(() => {
      this.#pending.delete(seq);
      reject(new Error(`no answer from the primary within ${this.#timeoutMs} ms`));
    }, this.#timeoutMs);
    this.#pending.set(seq, { resolve, reject, timer });
    try {
      this.#send({ type: 'acme-challenge', seq, token });
    } catch (err) {
      clearTimeout(timer);
      this.#pending.delete(seq);
      reject(err as Error);
    }
  });

  onAnswer(msg: ChallengeAnswer): void {
    const p = this.#pending.get(msg.seq);
    if (!p) return; // timed out already
    this.#pending.delete(msg.seq);
    clearTimeout(p.timer);
    if (msg.error !== undefined) p.reject(new Error(msg.error));
    else p.resolve(msg.found ? msg.keyAuthorization ?? '' : undefined);
  }

  /** Fails every waiting lookup (the worker is going away). */
  close(): void {
    for (const [seq, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new Error('worker closing'));
      this.#pending.delete(seq);
    }
  }
}

/** The primary's side: answers one request with `lookup`, one lookup per token in flight. */
export function challengeRelayServer(lookup: ChallengeLookup): (req: ChallengeRequest, reply: (a: ChallengeAnswer) => void) => void {
  const inFlight = new Map<string, Promise<string | undefined>>();
  return (req, reply) => {
    let p = inFlight.get(req.token);
    if (!p) {
      p = lookup(req.token).finally(() => inFlight.delete(req.token));
      inFlight.set(req.token, p);
    }
    p.then(
      (value) => reply(value === undefined ? { type: 'acme-challenge-answer', seq: req.seq, found: false } : { type: 'acme-challenge-answer', seq: req.seq, found: true, keyAuthorization: value }),
      (err: Error) => reply({ type: 'acme-challenge-answer', seq: req.seq, found: false, error: err.message }),
    );
  };
}
