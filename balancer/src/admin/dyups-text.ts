// dyups' plain-text answers (ngx_http_dyups_module): /list is one name per line, /detail and
// /upstream/:name print one `server ...` line per server. Pure formatting.
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';

export function dyupsServerLine(s: ServerSpec): string {
  const failTimeout = Math.round(s.failTimeoutMs / 1000);
  return `server ${s.id} weight=${s.weight} max_conns=0 max_fails=${s.maxFails} fail_timeout=${failTimeout} backup=${s.backup ? 1 : 0} down=${s.down ? 1 : 0}${s.canary === true ? ' canary=1' : ''}`;
}

export function dyupsList(names: readonly string[]): string {
  return names.map((n) => `${n}\n`).join('');
}

export function dyupsUpstream(u: UpstreamSpec): string {
  return u.servers.map((s) => `${dyupsServerLine(s)}\n`).join('');
}

export function dyupsDetail(upstreams: readonly UpstreamSpec[]): string {
  return upstreams.map((u) => `${u.name}\n${dyupsUpstream(u)}`).join('\n');
}

/** JSON view of one server in lua-resty-checkups' vocabulary (also what POST accepts). */
export function serverJson(s: ServerSpec): Record<string, unknown> {
  return {
    id: s.id,
    host: s.host,
    port: s.port,
    weight: s.weight,
    max_fails: s.maxFails,
    fail_timeout: s.failTimeoutMs / 1000,
    down: s.down,
    backup: s.backup,
    ...(s.canary === true ? { canary: true } : {}),
    ...(s.node ? { node: s.node } : {}),
    ...(s.zone ? { zone: s.zone } : {}),
    ...(s.serviceId ? { service_id: s.serviceId } : {}),
  };
}

export function upstreamJson(u: UpstreamSpec): Record<string, unknown> {
  return {
    name: u.name,
    origin: u.origin,
    algorithm: u.algorithm,
    ...(u.hashKey ? { hash_key: u.hashKey } : {}),
    servers: u.servers.map(serverJson),
  };
}
