// The balancer's own configuration format (what templates/balancer.conf.hbs renders in reload mode):
// nginx-like statements, parsed into a RouteTable through the same tableFromUpstreams the dynamic
// mode uses. Every problem is reported with its line number; one bad line rejects the whole file so
// the previous generation keeps serving.
//
//   # comment
//   upstream web {
//     lb wrr;                         # roundrobin | wrr | chash | ewma | local-first
//     hash header:x-user;             # chash key: header:<name> | cookie:<name> | ip | uri
//     max_fails 1; fail_timeout 10s;  # defaults for this upstream's servers
//     retries 2; retry_timeout 5s; retry_on 502,503,504; retry_non_idempotent off;
//     check http:/health interval=2s timeout=1s rise=2 fall=3 expect=200-399;   # or: check tcp;
//     server 10.0.0.1:8080 weight=2 max_fails=1 fail_timeout=10s;
//     server 10.0.0.2:8080 backup;    # flags: backup, down; also node=, zone=, id=
//   }
//   route web.example.com/api web;    # host[/path-prefix] or /path-prefix (any host)
//   upstream redis {                  # a TCP service (proto=tcp / tcp+sni tags in dynamic mode)
//     proto tcp;                      # http (default) | h2 | h2c | grpc | tcp | tcp+sni
//     listen 6379;                    # proto tcp: a port; proto tcp+sni: <server name>:<port>
//     proxy_protocol v2;              # v1 | v2: a PROXY header opens every upstream connection
//     server 10.0.0.3:6379;
//   }
//   upstream api {                    # access rules and rate limit (allow=, deny=, rate=, burst=, rate_by= tags)
//     allow ip:10.0.0.0/8,ip:fe80::/10;   # fabio syntax; deny wins; HTTP 403, TCP closed
//     deny ip:10.9.9.9;
//     rate 100/s; burst 200;          # token bucket; HTTP 429, TCP: new connections per second
//     rate_by header:x-user;          # ip (default) | header:<name>
//   }
//   upstream api { proto h2; tls_server_name api.internal; tls_skip_verify off; ... }   # proto h2 only
// A TCP upstream's ports are served only inside --tcp-ports (the worker refuses the others with a
// warning, as for any table); it takes no HTTP route, and its default check connects (check tcp).
import { parseUrlprefix, tableFromUpstreams } from '../routing/build-table.js';
import {
  DEFAULT_ACTIVE_CHECK, DEFAULT_TABLE_DEFAULTS, parseDurationMs, parseHashKey, parseNonNegativeInt, parseServiceTags, parseStatusList,
  type TableDefaults,
} from '../routing/tag-options.js';
import { unsafeWordReason } from './conf-word.js';
import { grpcServiceNameProblem } from '../health/grpc-health.js';
import {
  ALGORITHMS, UPSTREAM_PROTOCOLS, type ActiveCheckSpec, type Algorithm, type HashKey, type RetrySpec, type Route, type RouteTable, type ServerSpec,
  type RateLimitSpec, type TcpListen, type TrafficPolicy, type UpstreamProtocol, type UpstreamSpec, type UpstreamTlsSpec,
} from '../routing/types.js';
import { isTcpProtocol, parseTcpUrlprefix } from '../l4/tcp-tags.js';
import { parseAccessList } from '../policy/access-rules.js';
import { defaultBurst, MAX_BURST, parseRate, parseRateBy } from '../policy/rate-limit.js';

const UPSTREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export interface ConfProblem {
  readonly line: number;
  readonly message: string;
}

export class BalancerConfError extends Error {
  readonly code = 'ERR_BALANCER_CONF';
  constructor(readonly source: string, readonly problems: readonly ConfProblem[]) {
    super(`${source}: ${problems.map((p) => `line ${p.line}: ${p.message}`).join('; ')}`);
  }
}

interface Token {
  readonly text: string;
  readonly line: number;
}

/** Words, `{`, `}` and `;`; `#` starts a comment to the end of the line. */
export function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '{' || c === '}' || c === ';') {
      out.push({ text: c, line });
      i++;
    } else {
      let j = i;
      while (j < text.length && !/[\s{};#]/.test(text[j])) j++;
      out.push({ text: text.slice(i, j), line });
      i = j;
    }
  }
  return out;
}

interface Statement {
  readonly words: readonly Token[];
  /** the line of the first word */
  readonly line: number;
}

/** Parses the whole file; throws BalancerConfError listing every problem found. */
export function parseBalancerConf(text: string, opts: { source?: string; defaults?: TableDefaults } = {}): RouteTable {
  const source = opts.source ?? 'balancer.conf';
  const defaults = opts.defaults ?? DEFAULT_TABLE_DEFAULTS;
  const problems: ConfProblem[] = [];
  const err = (line: number, message: string) => problems.push({ line, message });
  const tokens = tokenize(text);
  const upstreams: Record<string, UpstreamSpec> = {};
  const upstreamLines = new Map<string, number>();
  const routes: { route: Route; line: number }[] = [];

  let i = 0;
  /** Reads words up to `;` (consumed) or `{` (not consumed). */
  const readStatement = (): Statement | undefined => {
    const words: Token[] = [];
    const first = tokens[i];
    while (i < tokens.length && tokens[i].text !== ';' && tokens[i].text !== '{' && tokens[i].text !== '}') words.push(tokens[i++]);
    if (i >= tokens.length) {
      err(words[0]?.line ?? first?.line ?? 1, `missing ";" after "${words.map((w) => w.text).join(' ')}"`);
      return undefined;
    }
    return { words, line: words[0]?.line ?? tokens[i].line };
  };

  while (i < tokens.length) {
    const st = readStatement();
    if (!st) break;
    const next = tokens[i];
    if (st.words.length === 0) {
      if (next.text === '}') err(next.line, 'unexpected "}"');
      else if (next.text === '{') err(next.line, 'block without a name');
      i++;
      continue;
    }
    const head = st.words[0].text;
    if (next.text === '{') {
      i++;
      if (head !== 'upstream') {
        err(st.line, `unknown block "${head}" (expected "upstream <name> {")`);
        skipBlock();
        continue;
      }
      if (st.words.length !== 2) {
        err(st.line, 'expected "upstream <name> {"');
        skipBlock();
        continue;
      }
      const name = st.words[1].text;
      const body = readBlockBody(st.line);
      if (!UPSTREAM_NAME.test(name)) {
        err(st.line, `invalid upstream name "${name}"`);
        continue;
      }
      if (upstreamLines.has(name)) {
        err(st.line, `upstream "${name}" already defined on line ${upstreamLines.get(name)}`);
        continue;
      }
      upstreamLines.set(name, st.line);
      const u = parseUpstream(name, body, defaults, err);
      if (u) upstreams[name] = u;
      continue;
    }
    if (next.text === '}') {
      err(next.line, 'unexpected "}"');
      i++;
      continue;
    }
    i++; // ';'
    if (head === 'route') {
      if (st.words.length !== 3) {
        err(st.line, 'expected "route <host>[/path] <upstream>;"');
        continue;
      }
      const warnings: string[] = [];
      const route = parseUrlprefix(st.words[2].text, `urlprefix-${st.words[1].text}`, warnings);
      if (!route) err(st.line, `bad route "${st.words[1].text}": ${warnings.join('; ').replace(/^service [^:]+: /, '')}`);
      else routes.push({ route, line: st.line });
      continue;
    }
    err(st.line, `unknown directive "${head}"${head === 'server' ? ' outside an upstream block' : ''}`);
  }

  for (const { route, line } of routes) {
    if (!upstreams[route.upstream] && !upstreamLines.has(route.upstream)) err(line, `route to unknown upstream "${route.upstream}"`);
    else if (isTcpProtocol(upstreams[route.upstream]?.protocol)) err(line, `route to TCP upstream "${route.upstream}" (it is served on its listen ports)`);
  }
  if (problems.length > 0) throw new BalancerConfError(source, problems.sort((a, b) => a.line - b.line));
  return tableFromUpstreams(upstreams, routes.map((r) => r.route));

  function skipBlock(): void {
    let depth = 1;
    while (i < tokens.length && depth > 0) {
      if (tokens[i].text === '{') depth++;
      else if (tokens[i].text === '}') depth--;
      i++;
    }
  }

  function readBlockBody(openLine: number): Statement[] {
    const body: Statement[] = [];
    for (;;) {
      if (i >= tokens.length) {
        err(openLine, 'block not closed (missing "}")');
        return body;
      }
      if (tokens[i].text === '}') {
        i++;
        return body;
      }
      const st = readStatement();
      if (!st) return body;
      const t = tokens[i];
      if (t.text === '{') {
        err(t.line, 'nested blocks are not allowed');
        i++;
        skipBlock();
        continue;
      }
      if (t.text === '}') {
        if (st.words.length > 0) err(st.line, `missing ";" after "${st.words.map((w) => w.text).join(' ')}"`);
        continue;
      }
      i++; // ';'
      if (st.words.length > 0) body.push(st);
    }
  }
}

type Report = (line: number, message: string) => void;

function parseUpstream(name: string, body: readonly Statement[], defaults: TableDefaults, err: Report): UpstreamSpec | undefined {
  let algorithm: Algorithm = defaults.algorithm;
  let hashKey: HashKey | undefined;
  let maxFails = defaults.maxFails;
  let failTimeoutMs = defaults.failTimeoutMs;
  const retry: { -readonly [K in keyof RetrySpec]: RetrySpec[K] } = { ...defaults.retry, onStatuses: [...defaults.retry.onStatuses] };
  let check: ActiveCheckSpec | undefined = defaults.check;
  let checkSet = false;
  let protocol: UpstreamProtocol | undefined;
  let proxyProtocol: 'v1' | 'v2' | undefined;
  const access: { allow?: readonly string[]; deny?: readonly string[] } = {};
  let rate: number | undefined;
  let burst: number | undefined;
  let rateBy: RateLimitSpec['by'] | undefined;
  let rateLine = 0;
  let tlsServerName: { name: string; line: number } | undefined;
  let tlsSkipVerify: { on: boolean; line: number } | undefined;
  const listenLines: { text: string; line: number }[] = [];
  const serverLines: { words: readonly Token[]; line: number }[] = [];
  let ok = true;
  const bad = (line: number, message: string) => {
    ok = false;
    err(line, `upstream ${name}: ${message}`);
  };

  for (const st of body) {
    const [head, ...args] = st.words.map((w) => w.text);
    const one = (): string | undefined => {
      if (args.length !== 1) {
        bad(st.line, `"${head}" takes one value`);
        return undefined;
      }
      return args[0];
    };
    switch (head) {
      case 'server':
        serverLines.push({ words: st.words.slice(1), line: st.line });
        break;
      case 'lb': {
        const v = one();
        if (v === undefined) break;
        if ((ALGORITHMS as readonly string[]).includes(v)) algorithm = v as Algorithm;
        else bad(st.line, `unknown lb "${v}" (${ALGORITHMS.join(', ')})`);
        break;
      }
      case 'hash': {
        const v = one();
        if (v === undefined) break;
        const k = parseHashKey(v);
        if (k) hashKey = k;
        else bad(st.line, `bad hash "${v}" (header:<name>, cookie:<name>, ip or uri)`);
        break;
      }
      case 'max_fails': {
        const v = one();
        const n = v === undefined ? undefined : parseNonNegativeInt(v);
        if (n === undefined) bad(st.line, 'max_fails expects an integer >= 0');
        else maxFails = n;
        break;
      }
      case 'fail_timeout': {
        const v = one();
        const ms = v === undefined ? undefined : parseDurationMs(v);
        if (ms === undefined) bad(st.line, 'fail_timeout expects a duration such as 10s');
        else failTimeoutMs = ms;
        break;
      }
      case 'retries': {
        const v = one();
        const n = v === undefined ? undefined : parseNonNegativeInt(v);
        if (n === undefined) bad(st.line, 'retries expects an integer >= 0');
        else retry.tries = n + 1;
        break;
      }
      case 'retry_timeout': {
        const v = one();
        const ms = v === undefined ? undefined : parseDurationMs(v);
        if (ms === undefined) bad(st.line, 'retry_timeout expects a duration');
        else retry.timeoutMs = ms;
        break;
      }
      case 'retry_on': {
        const v = one();
        const list = v === undefined ? undefined : parseStatusList(v);
        if (!list) bad(st.line, 'retry_on expects status codes such as 502,503,504');
        else retry.onStatuses = list;
        break;
      }
      case 'retry_non_idempotent': {
        const v = one();
        if (v === 'on' || v === 'off') retry.nonIdempotent = v === 'on';
        else bad(st.line, 'retry_non_idempotent expects on or off');
        break;
      }
      case 'check': {
        const c = parseCheck(args, defaults, (m) => bad(st.line, m));
        if (c) check = c;
        checkSet = true;
        break;
      }
      case 'proto': {
        const v = one();
        if (v === undefined) break;
        if ((UPSTREAM_PROTOCOLS as readonly string[]).includes(v)) protocol = v as UpstreamProtocol;
        else bad(st.line, `unknown proto "${v}" (${UPSTREAM_PROTOCOLS.join(', ')})`);
        break;
      }
      case 'listen':
        for (const a of args) listenLines.push({ text: a, line: st.line });
        if (args.length === 0) bad(st.line, '"listen" needs a port (proto tcp) or <server name>:<port> (proto tcp+sni)');
        break;
      case 'proxy_protocol': {
        const v = one();
        if (v === 'v1' || v === 'v2') proxyProtocol = v;
        else if (v !== undefined) bad(st.line, 'proxy_protocol expects v1 or v2');
        break;
      }
      case 'allow':
      case 'deny': {
        const v = one();
        if (v === undefined) break;
        const list = parseAccessList(v);
        if (typeof list === 'string') bad(st.line, `${head}: ${list}`);
        else access[head] = list;
        break;
      }
      case 'rate': {
        const v = one();
        rate = v === undefined ? undefined : parseRate(v);
        if (rate === undefined) bad(st.line, 'rate expects a rate such as 100/s or 6000/m');
        break;
      }
      case 'burst': {
        const v = one();
        burst = v !== undefined && /^\d{1,8}$/.test(v) && Number(v) >= 1 && Number(v) <= MAX_BURST ? Number(v) : undefined;
        if (burst === undefined) bad(st.line, `burst expects an integer from 1 to ${MAX_BURST}`);
        else rateLine ||= st.line;
        break;
      }
      case 'rate_by': {
        const v = one();
        rateBy = v === undefined ? undefined : parseRateBy(v);
        if (rateBy === undefined) bad(st.line, 'rate_by expects ip or header:<name>');
        else rateLine ||= st.line;
        break;
      }
      case 'tls_server_name': {
        // the tag's own rule (routing/tag-options.ts tls_server_name=)
        const v = one();
        if (v === undefined) break;
        const o = parseServiceTags(name, [[`tls_server_name=${v}`]], []);
        if (o.tlsServerName !== undefined) tlsServerName = { name: o.tlsServerName, line: st.line };
        else bad(st.line, 'tls_server_name expects a DNS name');
        break;
      }
      case 'tls_skip_verify': {
        const v = one();
        if (v === 'on' || v === 'off') tlsSkipVerify = { on: v === 'on', line: st.line };
        else if (v !== undefined) bad(st.line, 'tls_skip_verify expects on or off');
        break;
      }
      default:
        bad(st.line, `unknown directive "${head}"`);
    }
  }
  if (rate === undefined && rateLine > 0) bad(rateLine, '"burst" and "rate_by" need "rate"');

  const servers: ServerSpec[] = [];
  const seen = new Map<string, number>();
  for (const s of serverLines) {
    const server = parseServer(s.words, { maxFails, failTimeoutMs }, (m) => bad(s.line, m));
    if (!server) continue;
    const dup = seen.get(server.id);
    if (dup !== undefined) {
      bad(s.line, `server ${server.id} already listed on line ${dup}`);
      continue;
    }
    seen.set(server.id, s.line);
    servers.push(server);
  }
  const listen: TcpListen[] = [];
  if (listenLines.length > 0 && !isTcpProtocol(protocol)) bad(listenLines[0].line, '"listen" needs "proto tcp" or "proto tcp+sni"');
  else if (isTcpProtocol(protocol)) {
    const seenListen = new Set<string>();
    for (const l of listenLines) {
      // the same checks as the urlprefix- tag it comes from (l4/tcp-tags.ts)
      const problems: string[] = [];
      const parsed = parseTcpUrlprefix(name, protocol, `urlprefix-${protocol === 'tcp' ? ':' : ''}${l.text}`, problems);
      if (!parsed) bad(l.line, `bad listen "${l.text}": ${problems.join('; ').replace(/^.*ignored: /, '')}`);
      else if (!seenListen.has(`${parsed.port} ${parsed.sni ?? ''}`)) {
        seenListen.add(`${parsed.port} ${parsed.sni ?? ''}`);
        listen.push(parsed);
      }
    }
    listen.sort((a, b) => a.port - b.port || ((a.sni ?? '') < (b.sni ?? '') ? -1 : (a.sni ?? '') > (b.sni ?? '') ? 1 : 0));
    // a TCP service cannot answer an HTTP check: it is probed by connecting unless check says otherwise
    if (!checkSet && check) check = { ...check, type: 'tcp', path: '/' };
  }
  const tlsLine = tlsServerName?.line ?? tlsSkipVerify?.line;
  if (tlsLine !== undefined && protocol !== 'h2') bad(tlsLine, 'tls_server_name / tls_skip_verify need "proto h2"');
  if (!ok) return undefined;
  const rateLimit: RateLimitSpec | undefined = rate === undefined ? undefined : { ratePerSecond: rate, burst: burst ?? defaultBurst(rate), by: rateBy ?? { source: 'ip' } };
  const policy: TrafficPolicy | undefined = access.allow === undefined && access.deny === undefined && rateLimit === undefined ? undefined
    : { ...(access.allow !== undefined || access.deny !== undefined ? { access } : {}), ...(rateLimit ? { rateLimit } : {}) };
  const serverTls: UpstreamTlsSpec | undefined = tlsServerName === undefined && tlsSkipVerify?.on !== true ? undefined : {
    ...(tlsServerName !== undefined ? { serverName: tlsServerName.name } : {}),
    ...(tlsSkipVerify?.on === true ? { skipVerify: true } : {}),
  };
  // a gRPC check speaks the service's HTTP/2, as in the table build: TLS for proto h2, checked as its traffic
  if (check?.type === 'grpc') check = { ...check, tls: protocol === 'h2', ...(serverTls !== undefined ? { serverTls } : {}) };
  if (algorithm === 'chash' && !hashKey) hashKey = defaults.hashKey ?? { source: 'ip' };
  return {
    name,
    algorithm,
    ...(hashKey && algorithm === 'chash' ? { hashKey } : {}),
    servers,
    ...(check ? { check } : {}),
    retry,
    origin: 'config',
    ...(protocol !== undefined && protocol !== 'http' ? { protocol } : {}),
    ...(isTcpProtocol(protocol) ? { listen } : {}),
    ...(proxyProtocol !== undefined ? { proxyProtocol } : {}),
    ...(policy !== undefined ? { policy } : {}),
    ...(serverTls !== undefined ? { serverTls } : {}),
  };
}

function parseServer(words: readonly Token[], dflt: { maxFails: number; failTimeoutMs: number }, bad: (m: string) => void): ServerSpec | undefined {
  if (words.length === 0) {
    bad('server needs an address host:port');
    return undefined;
  }
  const addr = words[0].text;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) {
    bad(`bad server address "${addr}" (expected host:port)`);
    return undefined;
  }
  const host = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1];
  const s: { -readonly [K in keyof ServerSpec]: ServerSpec[K] } = {
    id: `${host}:${port}`, host, port, weight: 1, maxFails: dflt.maxFails, failTimeoutMs: dflt.failTimeoutMs, down: false, backup: false,
  };
  let ok = true;
  const fail = (msg: string) => {
    ok = false;
    bad(`server ${addr}: ${msg}`);
  };
  for (const w of words.slice(1)) {
    const t = w.text;
    if (t === 'backup') s.backup = true;
    else if (t === 'down') s.down = true;
    else {
      const eq = t.indexOf('=');
      const k = eq > 0 ? t.slice(0, eq) : t;
      const v = eq > 0 ? t.slice(eq + 1) : '';
      switch (k) {
        case 'weight': {
          const n = parseNonNegativeInt(v);
          if (n === undefined || n < 1) fail(`weight expects an integer >= 1, got "${v}"`);
          else s.weight = n;
          break;
        }
        case 'max_fails': {
          const n = parseNonNegativeInt(v);
          if (n === undefined) fail(`max_fails expects an integer >= 0, got "${v}"`);
          else s.maxFails = n;
          break;
        }
        case 'fail_timeout': {
          const ms = parseDurationMs(v);
          if (ms === undefined) fail(`fail_timeout expects a duration, got "${v}"`);
          else s.failTimeoutMs = ms;
          break;
        }
        case 'node': if (v) s.node = v; else fail('node= needs a value'); break;
        case 'zone': if (v) s.zone = v; else fail('zone= needs a value'); break;
        case 'id': if (v) s.serviceId = v; else fail('id= needs a value'); break;
        default: fail(`unknown parameter "${t}"`);
      }
    }
  }
  return ok ? s : undefined;
}

function parseCheck(args: readonly string[], defaults: TableDefaults, bad: (m: string) => void): ActiveCheckSpec | undefined {
  const base = defaults.check ?? DEFAULT_ACTIVE_CHECK;
  if (args.length === 0) {
    bad('check needs a type: http, http:/<path>, tcp, grpc or grpc:<service>');
    return undefined;
  }
  const kind = args[0];
  let type: 'http' | 'tcp' | 'grpc';
  let path = base.path;
  let grpcService: string | undefined;
  if (kind === 'tcp') type = 'tcp';
  else if (kind === 'http') type = 'http';
  else if (kind === 'grpc' || kind.startsWith('grpc:')) {
    type = 'grpc';
    grpcService = kind === 'grpc' ? '' : kind.slice(5);
    const why = grpcServiceNameProblem(grpcService);
    if (why !== undefined) {
      bad(`check ${kind}: ${why}`);
      return undefined;
    }
  }
  else if (kind.startsWith('http:/')) {
    type = 'http';
    path = kind.slice(5);
  } else {
    bad(`unknown check type "${kind}" (http, http:/<path>, tcp, grpc or grpc:<service>)`);
    return undefined;
  }
  const c: { -readonly [K in keyof ActiveCheckSpec]: ActiveCheckSpec[K] } = { ...base, type, path, ...(grpcService !== undefined ? { grpcService } : {}) };
  let ok = true;
  for (const a of args.slice(1)) {
    const eq = a.indexOf('=');
    const k = eq > 0 ? a.slice(0, eq) : a;
    const v = eq > 0 ? a.slice(eq + 1) : '';
    const dur = parseDurationMs(v);
    const int = parseNonNegativeInt(v);
    if ((k === 'interval' || k === 'timeout') && dur !== undefined && dur >= 1) {
      if (k === 'interval') c.intervalMs = dur;
      else c.timeoutMs = dur;
    } else if ((k === 'rise' || k === 'fall') && int !== undefined && int >= 1) {
      if (k === 'rise') c.rise = int;
      else c.fall = int;
    } else if (k === 'expect' && parseStatusList(v)) {
      c.expectStatuses = parseStatusList(v)!;
    } else {
      ok = false;
      bad(`check: bad parameter "${a}" (interval=, timeout=, rise=, fall=, expect=)`);
    }
  }
  return ok ? c : undefined;
}

/**
 * Prints a table in this format (parses back to an equal table): readable diffs and debugging. Consul
 * text that is not one safe word of the format (a node, zone or service ID with ";", "}", "#" or a space)
 * is left out, and so is an upstream whose name the parser would refuse (with its routes), as the
 * reload-mode template does: the output always parses and nothing in it comes from such text.
 */
/** a rate in words parseRate reads back to the same number (no exponent) */
function rateText(perSecond: number): string {
  for (const [n, unit] of [[perSecond, 's'], [perSecond * 60, 'm'], [perSecond * 3600, 'h']] as const) {
    if (/^\d+(\.\d+)?$/.test(String(n))) return `${n}/${unit}`;
  }
  return `${perSecond.toFixed(12)}/s`;
}

export function formatBalancerConf(table: RouteTable): string {
  const lines: string[] = [];
  const word = (key: string, v: string | undefined) => (v !== undefined && v !== '' && unsafeWordReason(v) === undefined ? [`${key}=${v}`] : []);
  const printable = new Set(Object.keys(table.upstreams).filter((n) => UPSTREAM_NAME.test(n)));
  for (const u of Object.values(table.upstreams)) {
    if (!printable.has(u.name)) continue;
    lines.push(`upstream ${u.name} {`);
    lines.push(`  lb ${u.algorithm};`);
    if (u.protocol !== undefined) lines.push(`  proto ${u.protocol};`);
    for (const l of u.listen ?? []) lines.push(`  listen ${l.sni !== undefined ? `${l.sni}:` : ''}${l.port};`);
    if (u.proxyProtocol !== undefined) lines.push(`  proxy_protocol ${u.proxyProtocol};`);
    const a = u.policy?.access;
    if (a?.allow) lines.push(`  allow ${a.allow.map((c) => `ip:${c}`).join(',')};`);
    if (a?.deny) lines.push(`  deny ${a.deny.map((c) => `ip:${c}`).join(',')};`);
    const r = u.policy?.rateLimit;
    if (r) lines.push(`  rate ${rateText(r.ratePerSecond)}; burst ${r.burst}; rate_by ${r.by.source === 'ip' ? 'ip' : `header:${r.by.name}`};`);
    if (u.serverTls?.serverName !== undefined) lines.push(`  tls_server_name ${u.serverTls.serverName};`);
    if (u.serverTls?.skipVerify === true) lines.push('  tls_skip_verify on;');
    if (u.hashKey) lines.push(`  hash ${u.hashKey.source === 'header' || u.hashKey.source === 'cookie' ? `${u.hashKey.source}:${u.hashKey.name}` : u.hashKey.source};`);
    lines.push(`  retries ${u.retry.tries - 1}; retry_timeout ${u.retry.timeoutMs}ms; retry_non_idempotent ${u.retry.nonIdempotent ? 'on' : 'off'};`);
    if (u.retry.onStatuses.length > 0) lines.push(`  retry_on ${u.retry.onStatuses.join(',')};`);
    if (u.check) {
      const c = u.check;
      const kind = c.type === 'tcp' ? 'tcp' : c.type === 'grpc' ? (c.grpcService ? `grpc:${c.grpcService}` : 'grpc') : `http:${c.path}`;
      lines.push(`  check ${kind} interval=${c.intervalMs}ms timeout=${c.timeoutMs}ms rise=${c.rise} fall=${c.fall} expect=${c.expectStatuses.join(',')};`);
    }
    for (const s of u.servers) {
      const host = s.host.includes(':') ? `[${s.host}]` : s.host;
      const extra = [
        `weight=${s.weight}`, `max_fails=${s.maxFails}`, `fail_timeout=${s.failTimeoutMs}ms`,
        ...(s.backup ? ['backup'] : []), ...(s.down ? ['down'] : []),
        ...word('node', s.node), ...word('zone', s.zone), ...word('id', s.serviceId),
      ];
      lines.push(`  server ${host}:${s.port} ${extra.join(' ')};`);
    }
    lines.push('}');
  }
  for (const r of table.routes) {
    if (printable.has(r.upstream) && unsafeWordReason(`${r.host}${r.pathPrefix}`) === undefined) lines.push(`route ${r.host}${r.pathPrefix} ${r.upstream};`);
  }
  return `${lines.join('\n')}\n`;
}
