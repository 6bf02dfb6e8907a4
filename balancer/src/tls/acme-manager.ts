// ACME (RFC 8555) for the names of `tls=acme` services, shared by every balancer instance through
// Consul KV: the account key, HTTP-01 key authorizations (any instance's plain listener answers
// them), renewal state and the certificates themselves (written under the TLS KV prefix, so every
// instance's KV follower serves them). One instance orders a name at a time, under a KV lock with an
// expiry. Renewal at two thirds of the lifetime, forced renewal on request, backoff after a failure;
// the old certificate serves until the new one is written.
//
// acme-client: maintained, RFC 8555 complete, no native dependencies, and it lets us drive each step
// (order, authorizations, challenge, finalize) so challenges go to KV instead of a local web root.
import { randomBytes, X509Certificate } from 'node:crypto';
import os from 'node:os';
import acme from 'acme-client';
import type pino from 'pino';
import type { Dispatcher } from 'undici';
import { backoffDelay, sleep } from '../../../common/backoff.js';
import type { ConsulConfig } from '../config.js';
import type { CatalogSnapshot } from '../routing/types.js';
import { challengeKey } from './acme-challenge.js';
import { acmeNames, renewalDue, retryDelayMs, type DueReason, type RenewalState } from './acme-names.js';
import type { CertStore } from './cert-store.js';
import { ConsulKv, type BudgetRead } from './consul-kv.js';
import { KvLock } from './kv-lock.js';
import type { AcmeConfig } from './tls-config.js';
import type { AcmeControl } from './acme-control.js';

export interface AcmeDeps {
  readonly acme: AcmeConfig;
  /** the TLS KV prefix: certificates go to <certPrefix><name>/cert and /key */
  readonly certPrefix: string;
  readonly consul: ConsulConfig;
  /** the primary's capped Consul pool (ConsulBudget.dispatcher); default undici's global one */
  readonly dispatcher?: Dispatcher;
  /** runs each KV call in the budget's read share (ConsulBudget.read); default at once */
  readonly read?: BudgetRead;
  readonly store: CertStore;
  readonly catalog?: { current(): CatalogSnapshot | undefined; subscribe(l: () => void): () => void };
  readonly log: pino.Logger;
  readonly signal: AbortSignal;
  readonly now?: () => number;
}

interface AccountRecord {
  readonly key: string;
}

export function startAcme(deps: AcmeDeps): AcmeControl {
  const m = new AcmeManager(deps);
  return m;
}

class AcmeManager implements AcmeControl {
  readonly #kv: ConsulKv;
  readonly #log: pino.Logger;
  readonly #now: () => number;
  readonly #me = `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  readonly #controller = new AbortController();
  readonly #done: Promise<void>;
  #client: acme.Client | undefined;
  #wake: (() => void) | undefined;
  #reportedProblems = new Set<string>();
  readonly #unsubscribe: (() => void) | undefined;

  constructor(private readonly deps: AcmeDeps) {
    const signal = AbortSignal.any([deps.signal, this.#controller.signal]);
    this.#kv = new ConsulKv({ baseUrl: deps.consul.baseUrl, token: deps.consul.token, dispatcher: deps.dispatcher }, signal, 10_000, deps.read);
    this.#log = deps.log.child({ instance: this.#me });
    this.#now = deps.now ?? Date.now;
    this.#unsubscribe = deps.catalog?.subscribe(() => this.#wake?.());
    this.#done = this.#loop(signal);
  }

  #p(rest: string): string {
    return `${this.deps.acme.kvPrefix}${rest}`;
  }

  wanted(): string[] {
    const { names, problems } = acmeNames(this.deps.catalog?.current());
    for (const p of problems) {
      if (this.#reportedProblems.has(p)) continue;
      this.#reportedProblems.add(p);
      this.#log.warn(p);
    }
    return names;
  }

  async status(): Promise<unknown> {
    const names = this.wanted();
    return {
      instance: this.#me,
      directory: this.deps.acme.directoryUrl,
      names: await Promise.all(names.map(async (name) => {
        const state = (await this.#kv.getJson<RenewalState>(this.#p(`state/${name}`)).catch(() => undefined))?.value;
        const lock = (await this.#kv.getJson<unknown>(this.#p(`locks/${name}`)).catch(() => undefined))?.value ?? null;
        const cert = this.deps.store.current().certs.find((c) => c.id === `kv:${name}`);
        return { name, notAfter: cert?.notAfter ?? null, fingerprint: cert?.fingerprint ?? null, state: state ?? null, lock };
      })),
    };
  }

  async forceRenew(name: string): Promise<boolean> {
    if (!this.wanted().includes(name)) return false;
    const key = this.#p(`state/${name}`);
    for (let i = 0; i < 5; i++) {
      const cur = await this.#kv.getJson<RenewalState>(key);
      const next: RenewalState = { ...(cur?.value ?? {}), forceRenewAt: this.#now(), nextAttemptAt: undefined };
      if (await this.#kv.put(key, JSON.stringify(next), cur?.modifyIndex ?? 0)) {
        this.#log.info({ name }, 'ACME renewal requested');
        this.#wake?.();
        return true;
      }
    }
    throw new Error(`renewal state of ${name} kept changing`);
  }

  async stop(): Promise<void> {
    this.#controller.abort();
    this.#unsubscribe?.();
    this.#wake?.();
    await this.#done;
  }

  async #loop(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      try {
        for (const name of this.wanted()) {
          if (signal.aborted) break;
          await this.#consider(name, signal);
        }
        failures = 0;
      } catch (err) {
        if (signal.aborted) break;
        this.#log.warn({ err: (err as Error).message }, 'ACME check failed');
        await sleep(backoffDelay({ baseMs: 500, maxMs: 30_000 }, failures++), signal);
      }
      // the next check: at the interval, or at once when the catalog changed or a renewal was asked for
      await new Promise<void>((resolve) => {
        const jitter = Math.round(this.deps.acme.checkIntervalMs * 0.1 * Math.random());
        const timer = setTimeout(done, this.deps.acme.checkIntervalMs + jitter);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
      this.#wake = undefined;
    }
  }

  /** The certificate stored in KV for a name (what every instance serves), dates only. */
  async #storedCert(name: string): Promise<{ notBefore: string; notAfter: string } | undefined> {
    const v = await this.#kv.get(`${this.deps.certPrefix}${name}/cert`);
    if (!v) return undefined;
    try {
      const x = new X509Certificate(v.value);
      return { notBefore: new Date(x.validFrom).toISOString(), notAfter: new Date(x.validTo).toISOString() };
    } catch {
      return undefined;
    }
  }

  async #due(name: string): Promise<{ reason: DueReason; state?: RenewalState; stateIndex: number } | undefined> {
    const st = await this.#kv.getJson<RenewalState>(this.#p(`state/${name}`));
    const state = st?.value;
    const reason = renewalDue(await this.#storedCert(name), state, this.#now());
    if (!reason) return undefined;
    if (reason !== 'forced' && state?.nextAttemptAt !== undefined && state.nextAttemptAt > this.#now()) return undefined;
    return { reason, state, stateIndex: st?.modifyIndex ?? 0 };
  }

  async #consider(name: string, signal: AbortSignal): Promise<void> {
    if (!(await this.#due(name))) return;
    const lock = new KvLock(this.#kv, this.#p(`locks/${name}`), this.#me, this.deps.acme.lockTtlMs, this.#now);
    if (!(await lock.acquire())) return; // another instance is on it
    let held = true;
    const heartbeat = setInterval(() => {
      lock.refresh().then((ok) => {
        if (!ok) held = false;
      }, () => undefined);
    }, Math.max(200, Math.floor(this.deps.acme.lockTtlMs / 3)));
    try {
      // another instance may have finished just before we took the lock: decide again
      const due = await this.#due(name);
      if (!due) return;
      this.#log.info({ name, reason: due.reason }, 'ACME order started');
      try {
        const { cert, key } = await this.#order(name, signal);
        if (!held || !(await lock.refresh())) throw new Error('the order lock expired during the order; certificate discarded');
        // key first: the KV follower re-reads after a change, and refuses a mismatched pair meanwhile
        await this.#kv.put(`${this.deps.certPrefix}${name}/key`, key);
        await this.#kv.put(`${this.deps.certPrefix}${name}/cert`, cert);
        await this.#putState(name, (s) => ({ ...s, issuedAt: this.#now(), failures: 0, nextAttemptAt: undefined, lastError: undefined }));
        const x = new X509Certificate(cert);
        this.#log.info({ name, reason: due.reason, serial: x.serialNumber, notAfter: new Date(x.validTo).toISOString() }, 'ACME certificate issued');
      } catch (err) {
        if (signal.aborted) return;
        const failures = (due.state?.failures ?? 0) + 1;
        const retryMs = retryDelayMs(this.deps.acme.retryBaseMs, failures);
        this.#log.warn({ name, err: (err as Error).message, failures, retryMs }, 'ACME order failed; the current certificate (if any) keeps serving');
        await this.#putState(name, (s) => ({ ...s, failures, nextAttemptAt: this.#now() + retryMs, lastError: (err as Error).message.slice(0, 300), forceRenewAt: undefined }));
      }
    } finally {
      clearInterval(heartbeat);
      await lock.release().catch(() => undefined);
    }
  }

  async #putState(name: string, change: (s: RenewalState) => RenewalState): Promise<void> {
    const key = this.#p(`state/${name}`);
    for (let i = 0; i < 5; i++) {
      const cur = await this.#kv.getJson<RenewalState>(key);
      if (await this.#kv.put(key, JSON.stringify(change(cur?.value ?? {})), cur?.modifyIndex ?? 0)) return;
    }
  }

  async #account(): Promise<acme.Client> {
    if (this.#client) return this.#client;
    const key = this.#p('account');
    let rec = await this.#kv.getJson<AccountRecord>(key);
    if (!rec) {
      const created: AccountRecord = { key: (await acme.crypto.createPrivateEcdsaKey('P-256')).toString() };
      // two instances starting together: the first write wins, the other reads it
      if (!(await this.#kv.put(key, JSON.stringify(created), 0))) rec = await this.#kv.getJson<AccountRecord>(key);
      else rec = { value: created, modifyIndex: 0 };
    }
    if (!rec) throw new Error('ACME account record unreadable');
    const client = new acme.Client({ directoryUrl: this.deps.acme.directoryUrl, accountKey: rec.value.key, backoffMin: 200, backoffMax: 2_000, backoffAttempts: 30 });
    await client.createAccount({ termsOfServiceAgreed: true, contact: this.deps.acme.email ? [`mailto:${this.deps.acme.email}`] : undefined });
    this.#client = client;
    return client;
  }

  async #order(name: string, signal: AbortSignal): Promise<{ cert: string; key: string }> {
    const client = await this.#account();
    const order = await client.createOrder({ identifiers: [{ type: 'dns', value: name }] });
    const authzs = await client.getAuthorizations(order);
    const tokens: string[] = [];
    try {
      for (const authz of authzs) {
        if (authz.status === 'valid') continue;
        const challenge = authz.challenges.find((c) => c.type === 'http-01');
        if (!challenge) throw new Error(`${name}: the CA offers no http-01 challenge`);
        const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
        await this.#kv.put(challengeKey(this.deps.acme.kvPrefix, challenge.token), keyAuthorization);
        tokens.push(challenge.token);
        if (signal.aborted) throw new Error('stopping');
        await client.completeChallenge(challenge);
        await client.waitForValidStatus(challenge);
      }
      const [key, csr] = await acme.crypto.createCsr({ commonName: name, altNames: [name] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
      const finalized = await client.finalizeOrder(order, csr);
      const valid = finalized.status === 'valid' ? finalized : await client.waitForValidStatus(finalized);
      const cert = await client.getCertificate(valid);
      return { cert, key: key.toString() };
    } finally {
      for (const t of tokens) await this.#kv.delete(challengeKey(this.deps.acme.kvPrefix, t)).catch(() => undefined);
    }
  }
}
