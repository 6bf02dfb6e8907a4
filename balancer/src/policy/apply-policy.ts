// The table builder's one call into the traffic policy: resolve a service's policy from its sources
// and mark its canary servers. Pure.
import type { CatalogInstance, UpstreamSpec } from '../routing/types.js';
import { parsePolicyTags, resolvePolicy, type PolicyDocument } from './policy-spec.js';

/** Policies set outside the tags, by service name. */
export interface PolicyOverrides {
  readonly admin: Readonly<Record<string, PolicyDocument>>;
  readonly kv: Readonly<Record<string, PolicyDocument>>;
}

export const NO_POLICY_OVERRIDES: PolicyOverrides = Object.freeze({ admin: Object.freeze({}), kv: Object.freeze({}) });

/**
 * `spec` with its resolved policy (admin > KV > tags) and `canary: true` on servers whose instance
 * carries the canary tag. `instances` are the Consul instances behind it (none for admin upstreams).
 */
export function withPolicy(
  spec: UpstreamSpec,
  instances: readonly CatalogInstance[],
  overrides: PolicyOverrides | undefined,
  defaultPanicPercent: number | undefined,
  warnings: string[],
): UpstreamSpec {
  const name = spec.name;
  const o = overrides ?? NO_POLICY_OVERRIDES;
  const tagsDoc = instances.length > 0 ? parsePolicyTags(name, instances.map((i) => i.tags), warnings) : undefined;
  const policy = resolvePolicy([
    Object.hasOwn(o.admin, name) ? o.admin[name] : undefined,
    Object.hasOwn(o.kv, name) ? o.kv[name] : undefined,
    tagsDoc,
  ], defaultPanicPercent);
  if (policy === undefined) return spec;
  const tag = policy.canary?.tag;
  if (tag === undefined) return { ...spec, policy };
  const canaryIds = new Set(instances.filter((i) => i.tags.includes(tag)).map((i) => i.serviceId));
  const servers = spec.servers.map((s) => (s.canary === true || (s.serviceId !== undefined && canaryIds.has(s.serviceId)) ? { ...s, canary: true } : s));
  return { ...spec, servers, policy };
}
