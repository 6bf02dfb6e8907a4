// Admin API body parsers: dyups text (`server 127.0.0.1:8089 weight=2 max_fails=3 fail_timeout=10s
// backup down canary;`) and lua-resty-checkups JSON (`{"servers":[{"host","port","weight",...}]}`).
// `canary` (JSON `"canary": true`) puts a server in its upstream's canary group, as the canary tag
// does for a Consul instance: it takes effect with a canary policy (PUT /policy/<name>).
// Both are strict: anything unexpected is a ServerListError saying what and where, so a bad admin
// call changes nothing.
import { checkHost, checkPort, parseHostPort } from '../../../common/host-port.js';
import type { ActiveCheckSpec, Algorithm, HashKey, RetrySpec, ServerSpec, UpstreamSpec } from './types.js';
import type { TableDefaults } from './tag-options.js';
import { parseDurationMs, parseNonNegativeInt } from './tag-options.js';

export interface ServerInput {
  readonly host: string;
  readonly port: number;
  readonly weight?: number;
  readonly maxFails?: number;
  readonly failTimeoutMs?: number;
  readonly down?: boolean;
  readonly backup?: boolean;
  readonly canary?: boolean;
}

export class ServerListError extends Error {
  readonly code = 'ERR_BAD_SERVER_LIST' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ServerListError';
  }
}

/** The ServerSpec id: "<host>:<port>", IPv6 hosts in brackets. */
export function serverId(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const NGINX_DEFAULT_PORT = 80;

export function parseDyupsServers(text: string): ServerInput[] {
  if (typeof text !== 'string') throw new ServerListError('dyups body: expected text');
  const out: ServerInput[] = [];
  const entries = text.split(';');
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i].trim();
    if (!entry) continue;
    const where = `dyups body, entry ${out.length + 1} "${entry.length > 80 ? entry.slice(0, 77) + '...' : entry}"`;
    const words = entry.split(/\s+/);
    if (words[0] !== 'server') throw new ServerListError(`${where}: expected "server <host>:<port> [params]"`);
    if (words.length < 2) throw new ServerListError(`${where}: missing address`);
    const { host, port } = parseAddress(words[1], where);
    const server: { -readonly [K in keyof ServerInput]: ServerInput[K] } = { host, port };
    for (const word of words.slice(2)) {
      if (word === 'backup') server.backup = true;
      else if (word === 'down') server.down = true;
      else if (word === 'canary') server.canary = true;
      else if (word.startsWith('weight=')) server.weight = intParam(word, 1, where);
      else if (word.startsWith('max_fails=')) server.maxFails = intParam(word, 0, where);
      else if (word.startsWith('fail_timeout=')) {
        const ms = parseDurationMs(word.slice(13));
        if (ms === undefined) throw new ServerListError(`${where}: bad duration in "${word}" (expected e.g. 10s, 500ms)`);
        server.failTimeoutMs = ms;
      } else throw new ServerListError(`${where}: unknown parameter "${word}"`);
    }
    out.push(server);
  }
  return checkList(out, 'dyups body');
}

function intParam(word: string, min: number, where: string): number {
  const n = parseNonNegativeInt(word.slice(word.indexOf('=') + 1));
  if (n === undefined || n < min) throw new ServerListError(`${where}: "${word}" needs an integer >= ${min}`);
  return n;
}

function parseAddress(address: string, where: string): { host: string; port: number } {
  const r = parseHostPort(address, NGINX_DEFAULT_PORT);
  if (!r.ok) throw new ServerListError(`${where}: ${r.reason}`);
  return { host: r.host, port: r.port };
}

const JSON_FIELDS = new Set(['host', 'port', 'weight', 'max_fails', 'fail_timeout', 'down', 'backup', 'canary']);

export function parseJsonServers(body: unknown): ServerInput[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ServerListError('JSON body: expected an object {"servers":[...]}');
  }
  const servers = (body as Record<string, unknown>).servers;
  if (!Array.isArray(servers)) throw new ServerListError('JSON body: "servers" must be an array');
  const out: ServerInput[] = servers.map((item, i) => parseJsonServer(item, `JSON body, servers[${i}]`));
  return checkList(out, 'JSON body');
}

function parseJsonServer(item: unknown, where: string): ServerInput {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) throw new ServerListError(`${where}: expected an object`);
  const o = item as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!JSON_FIELDS.has(key)) throw new ServerListError(`${where}: unknown field "${key}"`);
  }
  if (typeof o.host !== 'string' || !o.host.trim()) throw new ServerListError(`${where}: "host" must be a non-empty string`);
  const hostCheck = checkHost(o.host.trim());
  if (!hostCheck.ok) throw new ServerListError(`${where}: ${hostCheck.reason}`);
  const host = hostCheck.host;
  if (o.port === undefined) throw new ServerListError(`${where}: "port" is required`);
  const portCheck = checkPort(o.port);
  if (!portCheck.ok) throw new ServerListError(`${where}: "port": ${portCheck.reason}`);
  const port = portCheck.port;
  const weight = jsonInt(o.weight, 'weight', 1, where);
  const maxFails = jsonInt(o.max_fails, 'max_fails', 0, where);
  let failTimeoutMs: number | undefined;
  if (typeof o.fail_timeout === 'number') {
    // lua-resty-checkups gives fail_timeout in seconds
    if (!Number.isFinite(o.fail_timeout) || o.fail_timeout < 0) throw new ServerListError(`${where}: "fail_timeout" must be >= 0 seconds`);
    failTimeoutMs = Math.round(o.fail_timeout * 1000);
  } else if (typeof o.fail_timeout === 'string') {
    failTimeoutMs = parseDurationMs(o.fail_timeout);
    if (failTimeoutMs === undefined) throw new ServerListError(`${where}: "fail_timeout" must be seconds or a duration such as "10s"`);
  } else if (o.fail_timeout !== undefined) throw new ServerListError(`${where}: "fail_timeout" must be a number of seconds or a duration string`);
  const down = jsonBool(o.down, 'down', where);
  const backup = jsonBool(o.backup, 'backup', where);
  const canary = jsonBool(o.canary, 'canary', where);
  const server: { -readonly [K in keyof ServerInput]: ServerInput[K] } = { host, port };
  if (weight !== undefined) server.weight = weight;
  if (maxFails !== undefined) server.maxFails = maxFails;
  if (failTimeoutMs !== undefined) server.failTimeoutMs = failTimeoutMs;
  if (down !== undefined) server.down = down;
  if (backup !== undefined) server.backup = backup;
  if (canary === true) server.canary = true;
  return server;
}

function jsonInt(v: unknown, field: string, min: number, where: string): number | undefined {
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min) throw new ServerListError(`${where}: "${field}" must be an integer >= ${min}`);
  return n;
}

function jsonBool(v: unknown, field: string, where: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ServerListError(`${where}: "${field}" must be true or false`);
  return v;
}

function checkList(servers: ServerInput[], what: string): ServerInput[] {
  if (servers.length === 0) throw new ServerListError(`${what}: no server given`);
  const seen = new Set<string>();
  for (const s of servers) {
    const id = serverId(s.host, s.port);
    if (seen.has(id)) throw new ServerListError(`${what}: server ${id} listed twice`);
    seen.add(id);
  }
  return servers;
}

/** ServerInputs -> ServerSpecs sorted by id, unset attributes from the defaults. */
export function toServerSpecs(inputs: readonly ServerInput[], defaults: Pick<TableDefaults, 'maxFails' | 'failTimeoutMs'>): ServerSpec[] {
  return inputs
    .map((s): ServerSpec => ({
      id: serverId(s.host, s.port),
      host: s.host,
      port: s.port,
      weight: s.weight ?? 1,
      maxFails: s.maxFails ?? defaults.maxFails,
      failTimeoutMs: s.failTimeoutMs ?? defaults.failTimeoutMs,
      down: s.down ?? false,
      backup: s.backup ?? false,
      ...(s.canary === true ? { canary: true } : {}),
    }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export interface AdminUpstreamOptions {
  readonly algorithm?: Algorithm;
  readonly hashKey?: HashKey;
  readonly check?: ActiveCheckSpec;
  readonly retry?: RetrySpec;
}

/** An upstream defined through the admin API; it wins over a Consul service of the same name. */
export function adminUpstream(
  name: string,
  inputs: readonly ServerInput[],
  defaults: TableDefaults,
  options: AdminUpstreamOptions = {},
): UpstreamSpec {
  const algorithm = options.algorithm ?? defaults.algorithm;
  const hashKey = options.hashKey ?? (algorithm === 'chash' ? defaults.hashKey ?? { source: 'ip' } : defaults.hashKey);
  const check = options.check ?? defaults.check;
  const spec: UpstreamSpec = {
    name,
    algorithm,
    servers: toServerSpecs(inputs, defaults),
    retry: options.retry ?? defaults.retry,
    origin: 'admin',
    ...(hashKey ? { hashKey } : {}),
    ...(check ? { check } : {}),
  };
  return spec;
}
