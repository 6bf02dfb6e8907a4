// Canary split, pure: which group (stable or canary) a request belongs to. ingress-nginx's order:
// header, then cookie, then weight. `always` / `never` force either way; a header equal to
// headerValue or matching headerPattern forces the canary; anything else falls through. A client
// decided by weight gets a draw 0..9999 kept in a cookie the balancer sets: it is in the canary
// while draw < weight x 100, so it stays put across requests and table swaps, and moves only when
// the weight moves past its draw (raising the weight never sends a canary client back).
import type { CanaryPolicy } from '../routing/types.js';
import type { PickRequest } from './types.js';
import { cookieValue } from './chash.js';

export const STABLE = 0;
export const CANARY = 1;
export type Group = typeof STABLE | typeof CANARY;
export const BUCKETS = 10_000;

export interface CanaryRule {
  readonly policy: CanaryPolicy;
  /** draws below this go to the canary */
  readonly cut: number;
  readonly pattern: RegExp | undefined;
}

export function compileCanary(policy: CanaryPolicy): CanaryRule {
  let pattern: RegExp | undefined;
  if (policy.headerPattern !== undefined) {
    try {
      pattern = new RegExp(policy.headerPattern);
    } catch {
      pattern = undefined; // refused when the policy was parsed; a hand-made spec just loses the rule
    }
  }
  const weight = Math.min(100, Math.max(0, Number.isFinite(policy.weight) ? policy.weight : 0));
  return { policy, cut: Math.round(weight * (BUCKETS / 100)), pattern };
}

function headerText(req: PickRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The group forced by header or cookie, or -1 when neither decides. */
export function forcedGroup(rule: CanaryRule, req: PickRequest): Group | -1 {
  const p = rule.policy;
  if (p.header !== undefined) {
    const v = headerText(req, p.header);
    if (v !== undefined) {
      if (v === 'always') return CANARY;
      if (v === 'never') return STABLE;
      if (p.headerValue !== undefined && v === p.headerValue) return CANARY;
      if (rule.pattern !== undefined && rule.pattern.test(v)) return CANARY;
    }
  }
  if (p.cookie !== undefined) {
    const v = cookieValue(req.headers.cookie, p.cookie);
    if (v === 'always') return CANARY;
    if (v === 'never') return STABLE;
  }
  return -1;
}

/** The draw a client carries in the bucket cookie, or -1 when it has none (or a malformed one). */
export function bucketFromCookie(rule: CanaryRule, req: PickRequest): number {
  const v = cookieValue(req.headers.cookie, rule.policy.bucketCookie);
  if (v === undefined || v.length === 0 || v.length > 4) return -1;
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

export function groupOfBucket(rule: CanaryRule, bucket: number): Group {
  return bucket < rule.cut ? CANARY : STABLE;
}

/** A fresh draw, uniform over the buckets. */
export function drawBucket(random: () => number): number {
  return Math.min(BUCKETS - 1, Math.floor(random() * BUCKETS));
}

/** A draw inside `group`'s range (a client whose sticky server fixed its group gets a matching draw). */
export function drawBucketIn(rule: CanaryRule, group: Group, random: () => number): number {
  if (group === CANARY) return rule.cut === 0 ? 0 : Math.min(rule.cut - 1, Math.floor(random() * rule.cut));
  const span = BUCKETS - rule.cut;
  return span === 0 ? BUCKETS - 1 : rule.cut + Math.min(span - 1, Math.floor(random() * span));
}
