// Per-service HTTPS policy from tags: `redirect-https` sends plain-HTTP clients to the HTTPS
// listener (308, method and body kept), `hsts=<max-age seconds>` adds Strict-Transport-Security to
// HTTPS responses (never to plain ones, RFC 6797 section 7.2). Pure, except the one response writer.
import type { ClientExchange } from '../proxy/transport.js';
import type { CatalogInstance, HttpsPolicy, UpstreamSpec } from '../routing/types.js';

/** Two years: more than anyone asks for, less than an absurd typo. */
const MAX_HSTS_SECONDS = 63_072_000 * 2;

export function httpsPolicyFromTags(service: string, instances: readonly CatalogInstance[], warnings: string[]): HttpsPolicy | undefined {
  let redirect = false;
  let hsts: number | undefined;
  for (const inst of instances) {
    for (const tag of inst.tags) {
      if (tag === 'redirect-https') redirect = true;
      else if (tag.startsWith('hsts=')) {
        const v = tag.slice(5);
        const n = /^\d{1,10}$/.test(v) ? Number(v) : NaN;
        if (!Number.isSafeInteger(n) || n > MAX_HSTS_SECONDS) warnings.push(`service ${service}: tag "${tag}" ignored: expected max-age seconds 0-${MAX_HSTS_SECONDS}`);
        else if (hsts !== undefined && hsts !== n) warnings.push(`service ${service}: conflicting tag "${tag}" ignored, "hsts=${hsts}" wins`);
        else hsts = n;
      }
    }
  }
  if (!redirect && hsts === undefined) return undefined;
  return { redirect, hstsHeader: hsts === undefined ? undefined : `max-age=${hsts}` };
}

export function withHttpsPolicy(spec: UpstreamSpec, service: string, instances: readonly CatalogInstance[], warnings: string[]): UpstreamSpec {
  const https = httpsPolicyFromTags(service, instances, warnings);
  return https === undefined ? spec : { ...spec, https };
}

/** Location of the redirect: the same host and target on the HTTPS port (443 is left out). */
export function httpsLocation(host: string, target: string, httpsPort: number | undefined): string {
  const port = httpsPort === undefined || httpsPort === 443 || httpsPort === 0 ? '' : `:${httpsPort}`;
  const bracketed = host.includes(':') ? `[${host}]` : host;
  return `https://${bracketed}${port}${target}`;
}

export function sendHttpsRedirect(client: ClientExchange, host: string, target: string, httpsPort: number | undefined, closeConnection: boolean): void {
  const body = Buffer.from('redirecting to HTTPS\n');
  const headers = ['location', httpsLocation(host, target, httpsPort), 'content-type', 'text/plain', 'content-length', String(body.length)];
  if (closeConnection) headers.push('connection', 'close');
  client.writeHead(308, undefined, headers);
  client.end(client.method === 'HEAD' ? undefined : body);
}
