// Readable difference between two tables, one line per change, for the swap log:
//   + upstream web            - upstream web
//   + web 127.0.0.1:8081 weight=1 backup
//   - web 127.0.0.1:8081 weight=1
//   ~ web 127.0.0.1:8081 weight=1->2
//   ~ web lb roundrobin->ewma
//   + route api.example.com/v1 -> web      (host '*' = any host)
import type { Route, RouteTable, ServerSpec, UpstreamSpec } from './types.js';
import { canonicalJson } from './table-version.js';
import { upstreamOf } from './table-upstreams.js';

/**
 * `names`: only these upstreams are compared (the ones a change touched), so a change to one service
 * costs that service; without it every upstream is. Routes are compared unless both tables share them.
 */
export function diffTables(prev: RouteTable | undefined, next: RouteTable, names?: Iterable<string>): string[] {
  const lines: string[] = [];
  const all = names ? [...new Set(names)].sort() : [...new Set([...Object.keys(prev?.upstreams ?? {}), ...Object.keys(next.upstreams)])].sort();
  for (const name of all) {
    const a = prev ? upstreamOf(prev, name) : undefined;
    const b = upstreamOf(next, name);
    if (a === b) continue;
    if (!a && b) {
      lines.push(`+ upstream ${name}`);
      for (const s of b.servers) lines.push(`+ ${name} ${describeServer(s)}`);
    } else if (a && !b) {
      lines.push(`- upstream ${name}`);
      for (const s of a.servers) lines.push(`- ${name} ${describeServer(s)}`);
    } else if (a && b) {
      diffUpstream(a, b, lines);
    }
  }
  if (prev && prev.routes === next.routes) return lines;
  const ra = new Set((prev?.routes ?? []).map(describeRoute));
  const rb = new Set(next.routes.map(describeRoute));
  for (const r of ra) if (!rb.has(r)) lines.push(`- route ${r}`);
  for (const r of rb) if (!ra.has(r)) lines.push(`+ route ${r}`);
  return lines;
}

function diffUpstream(a: UpstreamSpec, b: UpstreamSpec, lines: string[]): void {
  const name = b.name;
  if (a.algorithm !== b.algorithm) lines.push(`~ ${name} lb ${a.algorithm}->${b.algorithm}`);
  const ha = a.hashKey ? describeHash(a.hashKey) : 'none';
  const hb = b.hashKey ? describeHash(b.hashKey) : 'none';
  if (ha !== hb) lines.push(`~ ${name} hash ${ha}->${hb}`);
  if (a.origin !== b.origin) lines.push(`~ ${name} origin ${a.origin}->${b.origin}`);
  const ca = a.check ? canonicalJson(a.check) : 'none';
  const cb = b.check ? canonicalJson(b.check) : 'none';
  if (ca !== cb) lines.push(`~ ${name} check ${ca}->${cb}`);
  const ta = canonicalJson(a.retry);
  const tb = canonicalJson(b.retry);
  if (ta !== tb) lines.push(`~ ${name} retry ${ta}->${tb}`);

  const sa = new Map(a.servers.map((s) => [s.id, s]));
  const sb = new Map(b.servers.map((s) => [s.id, s]));
  for (const [id, s] of sa) if (!sb.has(id)) lines.push(`- ${name} ${describeServer(s)}`);
  for (const [id, s] of sb) {
    const old = sa.get(id);
    if (!old) lines.push(`+ ${name} ${describeServer(s)}`);
    else {
      const changes = serverChanges(old, s);
      if (changes) lines.push(`~ ${name} ${id} ${changes}`);
    }
  }
}

function serverChanges(a: ServerSpec, b: ServerSpec): string {
  const parts: string[] = [];
  const fields = ['weight', 'maxFails', 'failTimeoutMs', 'down', 'backup', 'canary', 'node', 'zone', 'serviceId'] as const;
  for (const f of fields) {
    if (a[f] !== b[f]) parts.push(`${f}=${String(a[f] ?? '')}->${String(b[f] ?? '')}`);
  }
  return parts.join(' ');
}

export function describeServer(s: ServerSpec): string {
  let text = `${s.id} weight=${s.weight}`;
  if (s.backup) text += ' backup';
  if (s.down) text += ' down';
  if (s.canary) text += ' canary';
  return text;
}

function describeHash(h: { source: string; name?: string }): string {
  return h.name ? `${h.source}:${h.name}` : h.source;
}

function describeRoute(r: Route): string {
  return `${r.host || '*'}${r.pathPrefix} -> ${r.upstream}`;
}
