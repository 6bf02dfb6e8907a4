// Traffic policy as operators write it, from three sources: Consul tags, Consul KV
// (`balancer/policy/<service>`, JSON) and the admin API (`PUT /policy/<service>`, the same JSON).
// Pure: parsing never throws; a bad tag is a warning for that service, a bad JSON document a reason
// (the admin API answers 400 with it; a bad KV value is a warning and the key is ignored).
// Precedence is per document, as for upstreams: an admin policy replaces a KV one, which replaces
// the tags'. The panic threshold defaults to DEFAULT_PANIC_THRESHOLD_PERCENT when the winner says nothing.
//
// JSON: {"canary": {"tag": "canary", "weight": 10, "header": "X-Canary", "headerValue": "v",
//        "headerPattern": "^beta", "cookie": "canary", "bucketCookie": "lb_canary"},
//        "sticky": "cookie" | "cookie:<name>" | "header:<name>" | "ip"
//                 | {"mode": "cookie", "name": "lb_srv", "ttl": "1h", "secure": true, "httpOnly": true, "sameSite": "Lax"},
//        "panicThreshold": 50,
//        "allow": "ip:10.0.0.0/8,ip:fe80::/10" | ["ip:10.0.0.0/8"], "deny": ...,
//        "rate": "100/s", "burst": 200, "rateBy": "ip" | "header:<name>"}
// Tags: canary_tag=, canary_weight=, canary_header=, canary_header_value=, canary_header_pattern=,
//       canary_cookie=, sticky=cookie[:<name>]|header:<name>|ip, sticky_ttl=, sticky_secure=,
//       sticky_httponly=, sticky_samesite=, panic_threshold=, allow=, deny=, rate=, burst=, rate_by=
// (access rules: policy/access-rules.ts; rate limits: policy/rate-limit.ts)
import { DEFAULT_PANIC_THRESHOLD_PERCENT } from '../balancing/panic.js';
import { firstTagValues, parseDurationMs } from '../routing/tag-options.js';
import type { AccessRules, CanaryPolicy, RateLimitSpec, StickyPolicy, TrafficPolicy } from '../routing/types.js';
import { parseAccessList } from './access-rules.js';
import { defaultBurst, MAX_BURST, parseRate, parseRateBy } from './rate-limit.js';

export const DEFAULT_CANARY_TAG = 'canary';
export const DEFAULT_BUCKET_COOKIE = 'lb_canary';
export const DEFAULT_STICKY_COOKIE = 'lb_srv';
/** RFC 6265 cookie-name token; header names are tokens too (RFC 9110) */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
const TAG_TEXT = /^[^\s=]{1,128}$/;
const MAX_PATTERN = 512;
const MAX_TTL_S = 10 * 365 * 86_400;
const SAME_SITE = ['Strict', 'Lax', 'None'] as const;

/** A policy document as given by one source, validated; absent fields take the defaults. */
export interface PolicyDocument {
  readonly canary?: Partial<CanaryPolicy>;
  readonly sticky?: StickyPolicy;
  readonly panicThresholdPercent?: number;
  readonly access?: AccessRules;
  /** rate and key as given; burst may be absent (defaultBurst) */
  readonly rateLimit?: { readonly ratePerSecond: number; readonly burst?: number; readonly by?: RateLimitSpec['by'] };
}

export type PolicyParse = { ok: true; policy: PolicyDocument } | { ok: false; reason: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a JSON policy document (admin body or KV value). */
export function parsePolicyJson(value: unknown): PolicyParse {
  if (!isObject(value)) return { ok: false, reason: 'policy must be a JSON object' };
  for (const k of Object.keys(value)) {
    if (!JSON_KEYS.includes(k)) return { ok: false, reason: `unknown field "${k}" (expected ${JSON_KEYS.join(', ')})` };
  }
  const out: { -readonly [K in keyof PolicyDocument]: PolicyDocument[K] } = {};
  if (value.canary !== undefined) {
    const c = value.canary;
    if (!isObject(c)) return { ok: false, reason: 'canary must be an object' };
    const canary: { -readonly [K in keyof CanaryPolicy]?: CanaryPolicy[K] } = {};
    for (const [k, v] of Object.entries(c)) {
      switch (k) {
        case 'weight':
          if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100) return { ok: false, reason: 'canary.weight must be a number from 0 to 100' };
          canary.weight = v;
          break;
        case 'tag':
          if (typeof v !== 'string' || !TAG_TEXT.test(v)) return { ok: false, reason: 'canary.tag must be a tag (no spaces or "=")' };
          canary.tag = v;
          break;
        case 'header':
          if (typeof v !== 'string' || !TOKEN.test(v)) return { ok: false, reason: 'canary.header must be a header name' };
          canary.header = v.toLowerCase();
          break;
        case 'headerValue':
          if (typeof v !== 'string' || v.length === 0 || v.length > 1024) return { ok: false, reason: 'canary.headerValue must be a non-empty string' };
          canary.headerValue = v;
          break;
        case 'headerPattern': {
          const why = patternProblem(v);
          if (why) return { ok: false, reason: `canary.headerPattern ${why}` };
          canary.headerPattern = v as string;
          break;
        }
        case 'cookie':
        case 'bucketCookie':
          if (typeof v !== 'string' || !TOKEN.test(v)) return { ok: false, reason: `canary.${k} must be a cookie name` };
          canary[k] = v;
          break;
        default:
          return { ok: false, reason: `unknown field "canary.${k}"` };
      }
    }
    out.canary = canary;
  }
  if (value.sticky !== undefined) {
    const s = typeof value.sticky === 'string' ? stickyFromText(value.sticky) : stickyFromObject(value.sticky);
    if (typeof s === 'string') return { ok: false, reason: s };
    out.sticky = s;
  }
  if (value.panicThreshold !== undefined) {
    const v = value.panicThreshold;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100) return { ok: false, reason: 'panicThreshold must be a percentage from 0 to 100 (0 = off)' };
    out.panicThresholdPercent = v;
  }
  const access: { allow?: readonly string[]; deny?: readonly string[] } = {};
  for (const k of ['allow', 'deny'] as const) {
    const v = value[k];
    if (v === undefined) continue;
    const list = typeof v === 'string' || Array.isArray(v) ? parseAccessList(v) : 'must be a string or a list of "ip:<cidr>" entries';
    if (typeof list === 'string') return { ok: false, reason: `${k}: ${list}` };
    access[k] = list;
  }
  if (access.allow !== undefined || access.deny !== undefined) out.access = access;
  if (value.rate !== undefined || value.burst !== undefined || value.rateBy !== undefined) {
    const rate = typeof value.rate === 'string' ? parseRate(value.rate) : typeof value.rate === 'number' ? parseRate(String(value.rate)) : undefined;
    if (rate === undefined) return { ok: false, reason: 'rate must be a rate such as "100/s" or "6000/m" (burst and rateBy need one)' };
    const b = value.burst;
    if (b !== undefined && (typeof b !== 'number' || !Number.isInteger(b) || b < 1 || b > MAX_BURST)) return { ok: false, reason: `burst must be an integer from 1 to ${MAX_BURST}` };
    const by = value.rateBy === undefined ? undefined : typeof value.rateBy === 'string' ? parseRateBy(value.rateBy) : undefined;
    if (value.rateBy !== undefined && by === undefined) return { ok: false, reason: 'rateBy must be "ip" or "header:<name>"' };
    out.rateLimit = { ratePerSecond: rate, ...(b !== undefined ? { burst: b as number } : {}), ...(by ? { by } : {}) };
  }
  return { ok: true, policy: out };
}

const JSON_KEYS = ['canary', 'sticky', 'panicThreshold', 'allow', 'deny', 'rate', 'burst', 'rateBy'];

function patternProblem(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_PATTERN) return `must be a regular expression of 1-${MAX_PATTERN} characters`;
  try {
    new RegExp(v);
  } catch (err) {
    return `is not a valid regular expression: ${(err as Error).message}`;
  }
  return undefined;
}

const DEFAULT_STICKY: Omit<StickyPolicy, 'mode' | 'name'> = { ttlSeconds: 0, secure: false, httpOnly: true };

/** "cookie", "cookie:<name>", "header:<name>", "ip"; a string is the reason when malformed. */
export function stickyFromText(text: string): StickyPolicy | string {
  const t = text.trim();
  if (t === 'ip') return { mode: 'ip', name: '', ...DEFAULT_STICKY };
  if (t === 'cookie') return { mode: 'cookie', name: DEFAULT_STICKY_COOKIE, ...DEFAULT_STICKY };
  const colon = t.indexOf(':');
  const mode = colon < 0 ? t : t.slice(0, colon);
  const name = colon < 0 ? '' : t.slice(colon + 1).trim();
  if ((mode === 'cookie' || mode === 'header') && TOKEN.test(name)) {
    return { mode, name: mode === 'header' ? name.toLowerCase() : name, ...DEFAULT_STICKY };
  }
  return `sticky "${t.slice(0, 80)}": expected cookie, cookie:<name>, header:<name> or ip`;
}

function stickyFromObject(v: unknown): StickyPolicy | string {
  if (!isObject(v)) return 'sticky must be a string or an object';
  let base: StickyPolicy | string = stickyFromText(typeof v.mode === 'string' ? (v.name === undefined ? v.mode : `${v.mode}:${String(v.name)}`) : '');
  if (typeof base === 'string') return base;
  for (const [k, val] of Object.entries(v)) {
    switch (k) {
      case 'mode':
      case 'name':
        break;
      case 'ttl': {
        const ms = typeof val === 'number' ? val * 1000 : typeof val === 'string' ? parseDurationMs(val) : undefined;
        if (ms === undefined || !Number.isFinite(ms) || ms < 0 || ms / 1000 > MAX_TTL_S) return 'sticky.ttl must be a duration such as 30m or 1h (or seconds), at most 10 years';
        base = { ...base, ttlSeconds: Math.round(ms / 1000) };
        break;
      }
      case 'secure':
      case 'httpOnly':
        if (typeof val !== 'boolean') return `sticky.${k} must be true or false`;
        base = { ...base, [k]: val };
        break;
      case 'sameSite':
        if (!SAME_SITE.includes(val as (typeof SAME_SITE)[number])) return 'sticky.sameSite must be Strict, Lax or None';
        base = { ...base, sameSite: val as StickyPolicy['sameSite'] };
        break;
      default:
        return `unknown field "sticky.${k}"`;
    }
  }
  return base;
}

const TAG_KEYS = new Set([
  'canary_tag', 'canary_weight', 'canary_header', 'canary_header_value', 'canary_header_pattern', 'canary_cookie',
  'sticky', 'sticky_ttl', 'sticky_secure', 'sticky_httponly', 'sticky_samesite', 'panic_threshold',
  'allow', 'deny', 'rate', 'burst', 'rate_by',
]);

/**
 * The policy in a service's tags (all instances; the first value of a key wins, as for other service
 * tags), or undefined when no policy tag is present. Bad values are warnings and ignored.
 */
export function parsePolicyTags(service: string, instancesTags: readonly (readonly string[])[], warnings: string[]): PolicyDocument | undefined {
  const seen = new Map([...firstTagValues(service, instancesTags, TAG_KEYS, warnings)].map(([k, v]) => [k, v.value]));
  if (seen.size === 0) return undefined;
  const warn = (key: string, why: string) => warnings.push(`service ${service}: tag "${key}=${seen.get(key)}" ignored: ${why}`);
  const canary: { -readonly [K in keyof CanaryPolicy]?: CanaryPolicy[K] } = {};
  let hasCanary = false;
  const text = (key: string, ok: (v: string) => boolean, why: string, set: (v: string) => void) => {
    const v = seen.get(key);
    if (v === undefined) return;
    if (ok(v)) { set(v); hasCanary ||= key.startsWith('canary_'); } else warn(key, why);
  };
  text('canary_weight', (v) => /^\d{1,3}(\.\d+)?$/.test(v) && Number(v) <= 100, 'expected a percentage from 0 to 100', (v) => { canary.weight = Number(v); });
  text('canary_tag', (v) => TAG_TEXT.test(v), 'expected a tag', (v) => { canary.tag = v; });
  text('canary_header', (v) => TOKEN.test(v), 'expected a header name', (v) => { canary.header = v.toLowerCase(); });
  text('canary_header_value', (v) => v.length > 0, 'expected a value', (v) => { canary.headerValue = v; });
  text('canary_header_pattern', (v) => patternProblem(v) === undefined, 'expected a regular expression', (v) => { canary.headerPattern = v; });
  text('canary_cookie', (v) => TOKEN.test(v), 'expected a cookie name', (v) => { canary.cookie = v; });
  let sticky: StickyPolicy | undefined;
  const stickyText = seen.get('sticky');
  if (stickyText !== undefined) {
    const s = stickyFromText(stickyText);
    if (typeof s === 'string') warn('sticky', 'expected cookie, cookie:<name>, header:<name> or ip');
    else sticky = s;
  }
  const attr = (key: string): string | undefined => {
    const v = seen.get(key);
    if (v !== undefined && sticky === undefined) warn(key, 'no sticky= tag');
    return sticky === undefined ? undefined : v;
  };
  const ttl = attr('sticky_ttl');
  if (ttl !== undefined && sticky) {
    const ms = parseDurationMs(ttl);
    if (ms === undefined || ms / 1000 > MAX_TTL_S) warn('sticky_ttl', 'expected a duration such as 30m or 1h');
    else sticky = { ...sticky, ttlSeconds: Math.round(ms / 1000) };
  }
  for (const [key, field] of [['sticky_secure', 'secure'], ['sticky_httponly', 'httpOnly']] as const) {
    const v = attr(key);
    if (v === undefined || !sticky) continue;
    if (v === 'true' || v === 'false') sticky = { ...sticky, [field]: v === 'true' };
    else warn(key, 'expected true or false');
  }
  const sameSite = attr('sticky_samesite');
  if (sameSite !== undefined && sticky) {
    if (SAME_SITE.includes(sameSite as (typeof SAME_SITE)[number])) sticky = { ...sticky, sameSite: sameSite as StickyPolicy['sameSite'] };
    else warn('sticky_samesite', 'expected Strict, Lax or None');
  }
  let panic: number | undefined;
  text('panic_threshold', (v) => /^\d{1,3}(\.\d+)?%?$/.test(v) && parseFloat(v) <= 100, 'expected a percentage from 0 to 100', (v) => { panic = parseFloat(v); });
  const access: { allow?: readonly string[]; deny?: readonly string[] } = {};
  for (const k of ['allow', 'deny'] as const) {
    const v = seen.get(k);
    if (v === undefined) continue;
    const list = parseAccessList(v);
    if (typeof list === 'string') warn(k, list);
    else access[k] = list;
  }
  let rateLimit: PolicyDocument['rateLimit'];
  const rateText = seen.get('rate');
  if (rateText !== undefined) {
    const rate = parseRate(rateText);
    if (rate === undefined) warn('rate', 'expected a rate such as 100/s or 6000/m');
    else rateLimit = { ratePerSecond: rate };
  }
  const burstText = seen.get('burst');
  if (burstText !== undefined) {
    const n = /^\d{1,8}$/.test(burstText) ? Number(burstText) : 0;
    if (rateLimit === undefined) warn('burst', 'no valid rate= tag');
    else if (n < 1 || n > MAX_BURST) warn('burst', `expected an integer from 1 to ${MAX_BURST}`);
    else rateLimit = { ...rateLimit, burst: n };
  }
  const byText = seen.get('rate_by');
  if (byText !== undefined) {
    const by = parseRateBy(byText);
    if (rateLimit === undefined) warn('rate_by', 'no valid rate= tag');
    else if (by === undefined) warn('rate_by', 'expected ip or header:<name>');
    else rateLimit = { ...rateLimit, by };
  }
  return {
    ...(hasCanary ? { canary } : {}),
    ...(sticky ? { sticky } : {}),
    ...(panic !== undefined ? { panicThresholdPercent: panic } : {}),
    ...(access.allow !== undefined || access.deny !== undefined ? { access } : {}),
    ...(rateLimit !== undefined ? { rateLimit } : {}),
  };
}

/** The winning document (admin > KV > tags) with defaults filled in; undefined when nothing applies. */
export function resolvePolicy(
  sources: readonly (PolicyDocument | undefined)[],
  defaultPanicPercent: number = DEFAULT_PANIC_THRESHOLD_PERCENT,
): TrafficPolicy | undefined {
  const doc = sources.find((d) => d !== undefined) ?? {};
  const panic = doc.panicThresholdPercent ?? defaultPanicPercent;
  const c = doc.canary;
  const canary: CanaryPolicy | undefined = c === undefined ? undefined : {
    tag: c.tag ?? DEFAULT_CANARY_TAG,
    weight: c.weight ?? 0,
    bucketCookie: c.bucketCookie ?? DEFAULT_BUCKET_COOKIE,
    ...(c.header !== undefined ? { header: c.header } : {}),
    ...(c.headerValue !== undefined ? { headerValue: c.headerValue } : {}),
    ...(c.headerPattern !== undefined ? { headerPattern: c.headerPattern } : {}),
    ...(c.cookie !== undefined ? { cookie: c.cookie } : {}),
  };
  const r = doc.rateLimit;
  const rateLimit: RateLimitSpec | undefined = r === undefined ? undefined
    : { ratePerSecond: r.ratePerSecond, burst: r.burst ?? defaultBurst(r.ratePerSecond), by: r.by ?? { source: 'ip' } };
  if (canary === undefined && doc.sticky === undefined && panic <= 0 && doc.access === undefined && rateLimit === undefined) return undefined;
  return {
    ...(canary ? { canary } : {}),
    ...(doc.sticky ? { sticky: doc.sticky } : {}),
    ...(panic > 0 ? { panicThresholdPercent: panic } : {}),
    ...(doc.access ? { access: doc.access } : {}),
    ...(rateLimit ? { rateLimit } : {}),
  };
}

/** A document back in the JSON form parsePolicyJson reads (admin GET answers, dump file). */
export function policyDocumentToJson(doc: PolicyDocument): Record<string, unknown> {
  const s = doc.sticky;
  return {
    ...(doc.canary ? { canary: { ...doc.canary } } : {}),
    ...(s ? {
      sticky: {
        mode: s.mode, ...(s.mode === 'ip' ? {} : { name: s.name }), ttl: s.ttlSeconds, secure: s.secure, httpOnly: s.httpOnly,
        ...(s.sameSite ? { sameSite: s.sameSite } : {}),
      },
    } : {}),
    ...(doc.panicThresholdPercent !== undefined ? { panicThreshold: doc.panicThresholdPercent } : {}),
    ...(doc.access?.allow ? { allow: doc.access.allow.map((c) => `ip:${c}`) } : {}),
    ...(doc.access?.deny ? { deny: doc.access.deny.map((c) => `ip:${c}`) } : {}),
    ...(doc.rateLimit ? {
      rate: `${doc.rateLimit.ratePerSecond}/s`,
      ...(doc.rateLimit.burst !== undefined ? { burst: doc.rateLimit.burst } : {}),
      ...(doc.rateLimit.by ? { rateBy: doc.rateLimit.by.source === 'ip' ? 'ip' : `header:${doc.rateLimit.by.name}` } : {}),
    } : {}),
  };
}
