// Refuses what only a browser sends, so a web page open on the operator's machine cannot drive the
// admin API (no-preflight fetch with text/plain or form bodies, DNS rebinding):
// - Host must be an IP literal, localhost, the configured listen host, or a name on the allow list
//   (--admin-allowed-hosts). A rebinding page sends its own DNS name, which is none of these.
// - an Origin header must be the admin's own origin (a browser sends one on cross-origin POST/DELETE).
// - Sec-Fetch-Site: cross-site is refused outright.
// curl and scripts send none of Origin/Sec-Fetch-*, and a Host that is the address they dialled, so
// `curl -d 'server ...;' http://127.0.0.1:8081/upstream/x` keeps working. Pure: headers in, reason out.
import { isIP } from 'node:net';

export interface BrowserGuardOptions {
  /** extra Host names (without port) accepted, e.g. the compose service name; "*" accepts any */
  readonly allowedHosts?: readonly string[];
  /** the configured admin listen host (a name given there is the admin's own) */
  readonly listenHost?: string;
}

export interface RequestFacts {
  readonly host: string | undefined;
  readonly origin: string | undefined;
  readonly secFetchSite: string | undefined;
}

/** The hostname of a Host header value ("a:80" -> "a", "[::1]:80" -> "::1"), lower-cased. */
export function hostnameOf(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) {
    const close = h.indexOf(']');
    return close < 0 ? h : h.slice(1, close);
  }
  const colon = h.indexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

/** undefined when the request may proceed, else the reason it is refused (403). */
export function browserRequestProblem(req: RequestFacts, opts: BrowserGuardOptions): string | undefined {
  if (req.secFetchSite !== undefined && req.secFetchSite.toLowerCase() === 'cross-site') {
    return 'cross-site browser request refused (Sec-Fetch-Site: cross-site)';
  }
  if (req.host !== undefined && !hostAllowed(hostnameOf(req.host), opts)) {
    return `Host "${req.host.slice(0, 100)}" is not this admin API's address; add it with --admin-allowed-hosts if it is yours (DNS rebinding protection)`;
  }
  if (req.origin !== undefined) {
    let originHost: string | undefined;
    try {
      const u = new URL(req.origin);
      originHost = u.host.toLowerCase();
    } catch {
      originHost = undefined;
    }
    const own = req.host?.trim().toLowerCase();
    if (originHost === undefined || own === undefined || (originHost !== own && originHost !== stripDefaultPort(own))) {
      return `Origin "${req.origin.slice(0, 100)}" is not this admin API's own origin: cross-origin browser requests are refused`;
    }
  }
  return undefined;
}

function stripDefaultPort(host: string): string {
  return host.endsWith(':80') ? host.slice(0, -3) : host;
}

function hostAllowed(name: string, opts: BrowserGuardOptions): boolean {
  // an IP literal cannot be rebound: rebinding needs a name the attacker's DNS answers for
  if (isIP(name) !== 0) return true;
  if (name === 'localhost' || name === 'localhost.') return true;
  const allowed = opts.allowedHosts ?? [];
  if (allowed.includes('*')) return true;
  if (allowed.some((a) => a.toLowerCase() === name)) return true;
  return opts.listenHost !== undefined && opts.listenHost.toLowerCase() === name;
}
