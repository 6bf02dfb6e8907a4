// Sticky sessions, pure parts: the opaque server id a cookie carries and the Set-Cookie text.
// The id is an HMAC of the upstream and server id under a secret shared by all workers: stable
// across table swaps and workers, and it reveals nothing about the server's address.
import { createHmac } from 'node:crypto';
import type { StickyPolicy } from '../routing/types.js';

export function opaqueServerId(secret: string, upstream: string, serverId: string): string {
  return createHmac('sha256', secret).update(upstream).update('\u0000').update(serverId).digest('base64url').slice(0, 22);
}

/** Cookie attributes shared by the sticky and the canary-bucket cookie. */
export function cookieAttributes(p: StickyPolicy | undefined): string {
  if (p === undefined) return '; Path=/; HttpOnly; SameSite=Lax';
  let out = '; Path=/';
  if (p.ttlSeconds > 0) out += `; Max-Age=${p.ttlSeconds}`;
  if (p.secure || p.sameSite === 'None') out += '; Secure';
  if (p.httpOnly) out += '; HttpOnly';
  if (p.sameSite !== undefined) out += `; SameSite=${p.sameSite}`;
  return out;
}

export function setCookieText(name: string, value: string, attributes: string): string {
  return `${name}=${value}${attributes}`;
}
