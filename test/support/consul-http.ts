// Writes to the Consul agent (or the double) from tests: register, deregister, KV put, check update.
import http from 'node:http';
import assert from 'node:assert/strict';
import { request } from 'undici';
import type { ConsulTarget } from './consul.js';

/** a string body is sent as it is (KV values), anything else as JSON */
const bodyText = (body: unknown): string | undefined => (body === undefined || typeof body === 'string' ? body : JSON.stringify(body));

/** PUT on undici's pooled connections; asserts a 200 and says the agent's answer otherwise. */
export async function consulPut(consul: ConsulTarget, path: string, body?: unknown): Promise<void> {
  const res = await request(`${consul.url}${path}`, { method: 'PUT', body: bodyText(body), signal: AbortSignal.timeout(5000) });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `PUT ${path}: ${text}`);
}

/**
 * PUT on a connection of its own, closed after the answer: for tests that count the agent's
 * connections per client (a pooled connection would stay open and be counted).
 */
export function consulPutOwnConnection(consul: ConsulTarget, path: string, body?: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: consul.host, port: consul.port, method: 'PUT', path, agent: false, signal: AbortSignal.timeout(10_000) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${path} -> ${res.statusCode}: ${text}`))));
    });
    req.on('error', reject);
    req.end(bodyText(body));
  });
}

/** Any method on node's default agent; resolves with the status (the callers assert it). */
export function consulRequest(consul: ConsulTarget, method: string, path: string, body?: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: consul.host, port: consul.port, method, path, signal: AbortSignal.timeout(5000) }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(bodyText(body));
  });
}
