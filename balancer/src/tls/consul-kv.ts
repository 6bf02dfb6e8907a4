// The few Consul KV calls ACME needs (get with ModifyIndex, put and delete with check-and-set),
// each bounded by a timeout and the caller's signal.
import { request } from 'undici';
import type { ConsulEndpoint } from '../discovery/blocking-query.js';

export interface KvValue {
  readonly value: Buffer;
  readonly modifyIndex: number;
}

/** Runs one call inside a connection budget's read share (ConsulBudget.read). */
export type BudgetRead = <T>(signal: AbortSignal, fn: () => Promise<T>) => Promise<T>;

export class ConsulKv {
  /** `read`: each call runs inside the primary's connection budget (its read share); default at once */
  constructor(private readonly endpoint: ConsulEndpoint, private readonly signal: AbortSignal, private readonly timeoutMs = 5_000, private readonly read?: BudgetRead) {}

  async #call(method: string, key: string, params: Record<string, string>, body?: string | Buffer): Promise<{ status: number; text: string }> {
    const url = new URL(`/v1/kv/${key}`, this.endpoint.baseUrl);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const headers: Record<string, string> = {};
    if (this.endpoint.token) headers['x-consul-token'] = this.endpoint.token;
    // one deadline for the wait for a read slot and the call
    const signal = AbortSignal.any([this.signal, AbortSignal.timeout(this.timeoutMs)]);
    const call = async () => {
      const res = await request(url, { method, headers, body, signal, dispatcher: this.endpoint.dispatcher });
      return { status: res.statusCode, text: await res.body.text() };
    };
    const { status, text } = this.read ? await this.read(signal, call) : await call();
    if (status !== 200 && !(method === 'GET' && status === 404)) throw new Error(`${method} /v1/kv/${key} -> ${status}: ${text.slice(0, 200)}`);
    return { status, text };
  }

  async get(key: string): Promise<KvValue | undefined> {
    const r = await this.#call('GET', key, {});
    if (r.status === 404) return undefined;
    const [e] = JSON.parse(r.text) as { Value: string | null; ModifyIndex: number }[];
    return { value: Buffer.from(e.Value ?? '', 'base64'), modifyIndex: e.ModifyIndex };
  }

  async getJson<T>(key: string): Promise<{ value: T; modifyIndex: number } | undefined> {
    const v = await this.get(key);
    if (!v) return undefined;
    try {
      return { value: JSON.parse(v.value.toString('utf8')) as T, modifyIndex: v.modifyIndex };
    } catch {
      return undefined;
    }
  }

  /** cas undefined: unconditional; 0: only if absent; n: only if ModifyIndex is still n. */
  async put(key: string, value: string | Buffer, cas?: number): Promise<boolean> {
    const r = await this.#call('PUT', key, cas === undefined ? {} : { cas: String(cas) }, value);
    return r.text.trim() === 'true';
  }

  async delete(key: string, cas?: number): Promise<boolean> {
    const r = await this.#call('DELETE', key, cas === undefined ? {} : { cas: String(cas) });
    return r.text.trim() === 'true';
  }
}
