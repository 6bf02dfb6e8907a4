// Consul checks from SERVICE_[<port>_]CHECK_* metadata.
//
// Kinds: CHECK_HTTP=<path>, CHECK_HTTPS=<path>, CHECK_TCP=true, CHECK_GRPC=true|<grpc service>,
// CHECK_TTL=<duration>, CHECK_SCRIPT=<command> (run by the Consul agent), CHECK_CMD=<command> and
// CHECK_DOCKER=<command> (run inside the container by Consul's Docker check; registrator's check-cmd
// helper is not needed). $SERVICE_IP and $SERVICE_PORT are substituted in commands.
// Modifiers: CHECK_INTERVAL (default 10s), CHECK_TIMEOUT, CHECK_INITIAL_STATUS, CHECK_DEREGISTER_AFTER,
// CHECK_METHOD, CHECK_TLS_SKIP_VERIFY.
//
// Several checks per service, unlike registrator's single one:
//  - every kind key present makes its own check (CHECK_HTTP and CHECK_TCP together give two checks),
//    all sharing the unnumbered modifiers;
//  - numbered groups SERVICE_[<port>_]CHECK_<n>_<KIND|MODIFIER> make further checks with their own
//    modifiers, falling back to the unnumbered modifiers for those they do not set.
// A kind value of "false" disables that kind (lets SERVICE_443_CHECK_TCP=false undo SERVICE_CHECK_TCP).
// A bad value skips only the check it belongs to, with a warning.
import type { CheckKind, CheckSpec } from './types.js';
import type { MetadataEntry, PortMetadata } from './metadata.js';
import { isPositiveDuration, parseGoDuration } from './duration.js';

/** agent.go checks: the smallest DeregisterCriticalServiceAfter a Consul agent honours */
const AGENT_MIN_DEREGISTER_AFTER_MS = 60_000;

export const DEFAULT_CHECK_INTERVAL = '10s';

type KindKey = 'http' | 'https' | 'tcp' | 'grpc' | 'ttl' | 'script' | 'cmd' | 'docker';
type ModifierKey = 'interval' | 'timeout' | 'initial_status' | 'deregister_after' | 'method' | 'tls_skip_verify';

const KIND_KEYS: readonly KindKey[] = ['http', 'https', 'tcp', 'grpc', 'ttl', 'script', 'cmd', 'docker'];
const MODIFIER_KEYS: readonly ModifierKey[] = [
  'interval', 'timeout', 'initial_status', 'deregister_after', 'method', 'tls_skip_verify',
];
const INTERVAL_KINDS: ReadonlySet<KindKey> = new Set(['http', 'https', 'tcp', 'grpc', 'script', 'cmd', 'docker']);
const HTTP_KINDS: ReadonlySet<KindKey> = new Set(['http', 'https']);

/** Problem with one key; the mapper adds the container. */
export interface KeyProblem {
  readonly key: string;
  readonly value: string;
  readonly reason: string;
}

export interface CheckTargetContext {
  /** the service address and port the checks probe */
  readonly address: string;
  readonly port: number;
}

interface CheckGroup {
  readonly kinds: Map<KindKey, MetadataEntry>;
  readonly modifiers: Map<ModifierKey, MetadataEntry>;
}

const GO_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const GO_FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** Go strconv.ParseBool. */
export function parseGoBool(text: string): boolean | undefined {
  if (GO_TRUE.has(text)) return true;
  if (GO_FALSE.has(text)) return false;
  return undefined;
}

function hostForUrl(address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
}

function substitute(command: string, ctx: CheckTargetContext): string {
  return command.replaceAll('$SERVICE_IP', ctx.address).replaceAll('$SERVICE_PORT', String(ctx.port));
}

/** Groups the check_* keys of one port's metadata; unknown check keys are reported. */
function groupCheckKeys(meta: PortMetadata, problems: KeyProblem[]): Map<string, CheckGroup> {
  const groups = new Map<string, CheckGroup>();
  const groupFor = (id: string): CheckGroup => {
    let g = groups.get(id);
    if (!g) {
      g = { kinds: new Map(), modifiers: new Map() };
      groups.set(id, g);
    }
    return g;
  };
  for (const [key, entry] of meta) {
    if (!key.startsWith('check_')) continue;
    let rest = key.slice('check_'.length);
    let groupId = '';
    const numbered = /^(\d+)_(.+)$/.exec(rest);
    if (numbered) {
      groupId = String(Number(numbered[1]));
      rest = numbered[2];
    }
    if ((KIND_KEYS as readonly string[]).includes(rest)) {
      groupFor(groupId).kinds.set(rest as KindKey, entry);
    } else if ((MODIFIER_KEYS as readonly string[]).includes(rest)) {
      groupFor(groupId).modifiers.set(rest as ModifierKey, entry);
    } else {
      problems.push({ key: entry.sourceKey, value: entry.value, reason: `unknown check key "${rest}"` });
    }
  }
  return groups;
}

interface Built { check?: CheckSpec; problems: KeyProblem[] }

function buildOne(
  kind: KindKey,
  kindEntry: MetadataEntry,
  modifier: (m: ModifierKey) => MetadataEntry | undefined,
  ctx: CheckTargetContext,
): Built {
  const problems: KeyProblem[] = [];
  const bad = (e: MetadataEntry, reason: string): Built => {
    problems.push({ key: e.sourceKey, value: e.value, reason });
    return { problems };
  };
  const value = kindEntry.value.trim();
  if (value.toLowerCase() === 'false') return { problems };

  let checkKind: CheckKind;
  let target: string | undefined;
  let ttl: string | undefined;
  switch (kind) {
    case 'http':
    case 'https':
      if (!value.startsWith('/')) return bad(kindEntry, 'check path must start with "/"');
      checkKind = kind;
      target = `${kind}://${hostForUrl(ctx.address)}:${ctx.port}${value}`;
      break;
    case 'tcp':
      checkKind = 'tcp';
      target = `${hostForUrl(ctx.address)}:${ctx.port}`;
      break;
    case 'grpc':
      checkKind = 'grpc';
      target = `${hostForUrl(ctx.address)}:${ctx.port}`;
      if (value.toLowerCase() !== 'true') {
        if (/\s/.test(value)) return bad(kindEntry, 'gRPC service name must not contain spaces');
        target += `/${value}`;
      }
      break;
    case 'ttl':
      if (!isPositiveDuration(value)) return bad(kindEntry, 'TTL must be a positive duration like "30s"');
      checkKind = 'ttl';
      ttl = value;
      break;
    case 'script':
      checkKind = 'script';
      target = substitute(value, ctx);
      break;
    case 'cmd':
    case 'docker':
      checkKind = 'docker';
      target = substitute(value, ctx);
      break;
  }

  const spec: { -readonly [K in keyof CheckSpec]: CheckSpec[K] } = { kind: checkKind };
  if (target !== undefined) spec.target = target;
  if (ttl !== undefined) spec.ttl = ttl;

  if (INTERVAL_KINDS.has(kind)) {
    const interval = modifier('interval');
    if (interval) {
      if (!isPositiveDuration(interval.value)) return bad(interval, 'interval must be a positive duration like "10s"');
      spec.interval = interval.value;
    } else {
      spec.interval = DEFAULT_CHECK_INTERVAL;
    }
    const timeout = modifier('timeout');
    if (timeout) {
      if (!isPositiveDuration(timeout.value)) return bad(timeout, 'timeout must be a positive duration like "2s"');
      spec.timeout = timeout.value;
    }
  }
  if (HTTP_KINDS.has(kind)) {
    const method = modifier('method');
    if (method) {
      if (!/^[A-Za-z]+$/.test(method.value)) return bad(method, 'HTTP method must be a single word like GET');
      spec.method = method.value.toUpperCase();
    }
    const skip = modifier('tls_skip_verify');
    if (skip) {
      const b = parseGoBool(skip.value);
      if (b === undefined) return bad(skip, 'TLS_SKIP_VERIFY must be true or false');
      spec.tlsSkipVerify = b;
    }
  }
  const status = modifier('initial_status');
  if (status) {
    const s = status.value.toLowerCase();
    if (s !== 'passing' && s !== 'warning' && s !== 'critical') {
      return bad(status, 'initial status must be passing, warning or critical');
    }
    spec.initialStatus = s;
  }
  const deregister = modifier('deregister_after');
  if (deregister) {
    if (!isPositiveDuration(deregister.value)) {
      return bad(deregister, 'deregister-after must be a positive duration like "1m"');
    }
    spec.deregisterAfter = deregister.value;
    // agent.go: a DeregisterCriticalServiceAfter under one minute is raised to one minute, and the
    // reaper runs every 30 s; kept as given (the agent's floor is the agent's), but said
    if ((parseGoDuration(deregister.value) ?? 0) < AGENT_MIN_DEREGISTER_AFTER_MS) {
      problems.push({ key: deregister.sourceKey, value: deregister.value, reason: 'a Consul agent raises deregister-after below 1m to 1m and reaps every 30 s: the service goes 1 to 1.5 min after turning critical, not sooner' });
    }
  }
  return { check: spec, problems };
}

/** The checks one service gets from its metadata, plus problems for the keys that were skipped. */
export function checksFromMetadata(
  meta: PortMetadata,
  ctx: CheckTargetContext,
): { checks: CheckSpec[]; problems: KeyProblem[] } {
  const problems: KeyProblem[] = [];
  const groups = groupCheckKeys(meta, problems);
  const base = groups.get('');
  const ids = [...groups.keys()].sort((a, b) => (a === '' ? -1 : b === '' ? 1 : Number(a) - Number(b)));
  const checks: CheckSpec[] = [];
  for (const id of ids) {
    const group = groups.get(id)!;
    if (group.kinds.size === 0) {
      if (id !== '') {
        const [first] = group.modifiers.values();
        problems.push({
          key: first.sourceKey, value: first.value,
          reason: `numbered check ${id} has modifiers but no kind (HTTP, HTTPS, TCP, GRPC, TTL, SCRIPT, CMD, DOCKER)`,
        });
      }
      continue;
    }
    const modifier = (m: ModifierKey): MetadataEntry | undefined => group.modifiers.get(m) ?? base?.modifiers.get(m);
    for (const kind of KIND_KEYS) {
      const entry = group.kinds.get(kind);
      if (!entry) continue;
      const built = buildOne(kind, entry, modifier, ctx);
      problems.push(...built.problems);
      if (built.check) checks.push(built.check);
    }
  }
  return { checks, problems };
}
