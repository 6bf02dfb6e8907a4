// The admin API's bearer token when none is configured. On a loopback-only listener only this host
// can reach the API, and it stays open as before. Beyond loopback (a container's 0.0.0.0, a LAN
// address) an open API would let any neighbour rewrite the routing, and a default token would be the
// same secret in every install, so the balancer makes one at start: 32 random bytes, written to a file
// only its user can read (mode 0600, in a 0700 directory it creates), whose path it logs. The token
// itself never goes to a log: logs are shared (docker logs, journald, a log shipper), the file is not.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../render/atomic-write.js';

/** where a made token goes without --admin-token-file (the image sets /app/run/admin-token) */
export function defaultAdminTokenFile(home = homedir()): string {
  return join(home, '.consul-balancer', 'admin-token');
}

/** true when only this host can connect: 127.0.0.0/8, ::1 (also IPv4-mapped) or the name localhost */
export function isLoopbackOnly(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

export type AdminTokenPlan =
  | { readonly kind: 'configured'; readonly token: string }
  | { readonly kind: 'open' }
  | { readonly kind: 'make'; readonly file: string };

/** Pure: what the admin API is protected by, from --admin-token, the listen host and --admin-token-file. */
export function adminTokenPlan(opts: { readonly token?: string; readonly adminHost: string; readonly file?: string }, home?: string): AdminTokenPlan {
  if (opts.token !== undefined) return { kind: 'configured', token: opts.token };
  if (isLoopbackOnly(opts.adminHost)) return { kind: 'open' };
  return { kind: 'make', file: opts.file ?? defaultAdminTokenFile(home) };
}

export class AdminTokenError extends Error {
  readonly code = 'ERR_ADMIN_TOKEN_FILE' as const;
}

/** Makes a token and writes it (with a newline) to `file`, readable by this user alone. */
export async function writeNewAdminToken(file: string, random: (n: number) => Buffer = randomBytes): Promise<string> {
  const token = random(32).toString('base64url');
  try {
    const dir = dirname(file);
    // created 0700 when missing; an existing directory keeps its mode (the file's own 0600 protects it)
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, `${token}\n`, 0o600);
    await chmod(file, 0o600);
  } catch (err) {
    throw new AdminTokenError(`cannot write the admin token file ${file}: ${(err as Error).message} (set --admin-token, or --admin-token-file to a writable path)`);
  }
  return token;
}
