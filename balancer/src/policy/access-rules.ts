// Who may reach a service (pure): fabio's `allow=` / `deny=` syntax, a comma separated list of
// `ip:<address or CIDR>` entries. Deny wins; with an allow list, an address in none of it is denied;
// no list at all lets everyone in. HTTP answers 403, TCP closes the connection.
import { CidrMatcher, parseCidr } from '../proxy/cidr.js';
import type { AccessRules } from '../routing/types.js';

export const MAX_ACCESS_ENTRIES = 256;

/** "ip:10.0.0.0/8,ip:fe80::/10" (or a JSON array of the same entries) -> the validated CIDR texts, or the reason. */
export function parseAccessList(value: string | readonly unknown[]): readonly string[] | string {
  const items = typeof value === 'string' ? value.split(',') : value;
  const out: string[] = [];
  for (const raw of items) {
    if (typeof raw !== 'string') return 'entries must be strings such as "ip:10.0.0.0/8"';
    const item = raw.trim();
    if (item === '') continue;
    if (!item.startsWith('ip:')) return `"${item.slice(0, 60)}": expected ip:<address or CIDR> (fabio syntax)`;
    const range = parseCidr(item.slice(3).trim());
    if (range === undefined) return `"${item.slice(0, 60)}" is not an IPv4 or IPv6 address or CIDR range`;
    out.push(range.text);
  }
  if (out.length === 0) return 'empty list';
  if (out.length > MAX_ACCESS_ENTRIES) return `more than ${MAX_ACCESS_ENTRIES} entries`;
  return out;
}

export class AccessCheck {
  readonly #allow: CidrMatcher | undefined;
  readonly #deny: CidrMatcher | undefined;

  constructor(rules: AccessRules) {
    this.#allow = rules.allow === undefined ? undefined : new CidrMatcher(rules.allow.map((t) => parseCidr(t)!).filter(Boolean));
    this.#deny = rules.deny === undefined ? undefined : new CidrMatcher(rules.deny.map((t) => parseCidr(t)!).filter(Boolean));
  }

  allows(clientIp: string): boolean {
    if (this.#deny !== undefined && this.#deny.has(clientIp)) return false;
    if (this.#allow !== undefined) return this.#allow.has(clientIp);
    return true;
  }
}
