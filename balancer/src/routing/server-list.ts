// Admin API body parsers: dyups text and lua-resty-checkups JSON server lists.
import type { ActiveCheckSpec, Algorithm, HashKey, RetrySpec, ServerSpec, UpstreamSpec } from './types.js';
import type { TableDefaults } from './tag-options.js';

export interface ServerInput {
  readonly host: string;
  readonly port: number;
  readonly weight?: number;
  readonly maxFails?: number;
  readonly failTimeoutMs?: number;
  readonly down?: boolean;
  readonly backup?: boolean;
}

export class ServerListError extends Error {
  readonly code = 'ERR_BAD_SERVER_LIST' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ServerListError';
  }
}

export function parseDyupsServers(text: string): ServerInput[] {
  void text;
  throw new ServerListError('not implemented');
}

export function parseJsonServers(body: unknown): ServerInput[] {
  void body;
  throw new ServerListError('not implemented');
}

export function toServerSpecs(inputs: readonly ServerInput[], defaults: Pick<TableDefaults, 'maxFails' | 'failTimeoutMs'>): ServerSpec[] {
  void inputs; void defaults;
  return [];
}

export interface AdminUpstreamOptions {
  readonly algorithm?: Algorithm;
  readonly hashKey?: HashKey;
  readonly check?: ActiveCheckSpec;
  readonly retry?: RetrySpec;
}

export function adminUpstream(
  name: string,
  inputs: readonly ServerInput[],
  defaults: TableDefaults,
  options: AdminUpstreamOptions = {},
): UpstreamSpec {
  void options;
  return { name, algorithm: defaults.algorithm, servers: toServerSpecs(inputs, defaults), retry: defaults.retry, origin: 'admin' };
}
