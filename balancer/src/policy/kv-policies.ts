// Consul KV as a policy source: every key `balancer/policy/<service>` holds a JSON policy document.
// A bad document is a warning for that service and is left out (the next source applies).
import type { PolicyDocument } from './policy-spec.js';
import { parsePolicyJson } from './policy-spec.js';

export const POLICY_KV_PREFIX = 'balancer/policy/';

export function policiesFromKv(entries: Readonly<Record<string, string>>, warnings: string[]): Record<string, PolicyDocument> {
  const out: Record<string, PolicyDocument> = {};
  for (const key of Object.keys(entries).sort()) {
    if (key.includes('/')) {
      warnings.push(`consul kv ${POLICY_KV_PREFIX}${key}: ignored, expected ${POLICY_KV_PREFIX}<service>`);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(entries[key]);
    } catch (err) {
      warnings.push(`consul kv ${POLICY_KV_PREFIX}${key}: ignored, not JSON: ${(err as Error).message}`);
      continue;
    }
    const parsed = parsePolicyJson(value);
    if (parsed.ok) out[key] = parsed.policy;
    else warnings.push(`consul kv ${POLICY_KV_PREFIX}${key}: ignored: ${parsed.reason}`);
  }
  return out;
}
