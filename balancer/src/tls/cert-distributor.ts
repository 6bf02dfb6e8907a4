// Primary -> workers: the certificate snapshot as a delta against what each worker has (a full set
// to a new worker or one that missed a step), and the session ticket keys every worker shares
// (generated here, rotated, so a ticket issued by one worker resumes on any other).
import { randomBytes } from 'node:crypto';
import type pino from 'pino';
import type { PrimaryToWorker, WorkerToPrimary } from '../cluster/messages.js';
import type { WorkerChannel } from '../cluster/supervisor.js';
import { certDelta, fullDelta, type CertSnapshot } from './cert-snapshot.js';
import type { CertStore } from './cert-store.js';
import { TICKET_KEY_BYTES } from './tls-settings.js';

/** The part of the Supervisor this needs. */
export interface WorkerChannels {
  onWorkerInit(listener: (ch: WorkerChannel) => void): () => void;
  onWorkerMessage(listener: (ch: WorkerChannel, msg: WorkerToPrimary) => void): () => void;
  channels(): WorkerChannel[];
}

export interface CertDistributorOptions {
  readonly store: CertStore;
  readonly workers: WorkerChannels;
  readonly log: pino.Logger;
  /** session ticket key rotation; 0 = never */
  readonly ticketRotateMs: number;
}

export class CertDistributor {
  /** version each worker acknowledged last */
  readonly #workerVersion = new Map<number, string>();
  /** the snapshot each worker was last sent (deltas are computed against it) */
  readonly #sent = new Map<number, CertSnapshot>();
  #seq = 0;
  #ticketKeys = randomBytes(TICKET_KEY_BYTES);
  #rotateTimer: NodeJS.Timeout | undefined;
  readonly #offs: (() => void)[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(private readonly opts: CertDistributorOptions) {
    this.#offs.push(opts.workers.onWorkerInit((ch) => {
      this.#sendKeys(ch);
      this.#sendFull(ch);
    }));
    this.#offs.push(opts.workers.onWorkerMessage((ch, msg) => this.#onMessage(ch, msg)));
    this.#offs.push(opts.store.subscribe((_prev, next) => {
      for (const ch of opts.workers.channels()) this.#sendTo(ch, next);
    }));
    if (opts.ticketRotateMs > 0) {
      this.#rotateTimer = setInterval(() => this.rotateTicketKeys(), opts.ticketRotateMs);
      this.#rotateTimer.unref();
    }
  }

  rotateTicketKeys(): void {
    this.#ticketKeys = randomBytes(TICKET_KEY_BYTES);
    for (const ch of this.opts.workers.channels()) this.#sendKeys(ch);
    this.opts.log.info('session ticket keys rotated');
  }

  /** Resolves true once every live worker acknowledged this version (false after timeoutMs). */
  whenApplied(version: string, timeoutMs: number): Promise<boolean> {
    const done = () => this.opts.workers.channels().every((ch) => this.#workerVersion.get(ch.workerId) === version);
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!done()) return;
        finish(true);
      };
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(ok);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.#waiters.add(check);
    });
  }

  stop(): void {
    if (this.#rotateTimer) clearInterval(this.#rotateTimer);
    for (const off of this.#offs) off();
  }

  #sendKeys(ch: WorkerChannel): void {
    ch.send({ type: 'tls-ticket-keys', keys: this.#ticketKeys.toString('base64') });
  }

  #sendFull(ch: WorkerChannel): void {
    const snap = this.opts.store.current();
    this.#sent.set(ch.workerId, snap);
    this.#post(ch, { type: 'tls-certs', seq: ++this.#seq, delta: fullDelta(snap) });
  }

  #sendTo(ch: WorkerChannel, next: CertSnapshot): void {
    const prev = this.#sent.get(ch.workerId);
    if (!prev) return this.#sendFull(ch);
    this.#sent.set(ch.workerId, next);
    this.#post(ch, { type: 'tls-certs', seq: ++this.#seq, delta: certDelta(prev, next) });
  }

  #post(ch: WorkerChannel, msg: PrimaryToWorker): void {
    if (!ch.send(msg)) {
      this.#sent.delete(ch.workerId);
      this.#workerVersion.delete(ch.workerId);
    }
  }

  #onMessage(ch: WorkerChannel, msg: WorkerToPrimary): void {
    if (msg.type !== 'tls-certs-ack') return;
    if (!msg.ok) {
      this.opts.log.info({ workerId: ch.workerId, has: msg.version }, 'worker missed a certificate delta: sending the full set');
      this.#sendFull(ch);
      return;
    }
    this.#workerVersion.set(ch.workerId, msg.version);
    for (const w of [...this.#waiters]) w();
  }
}
