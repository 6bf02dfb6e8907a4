// The TCP flags (--tcp-ports, --tcp-host, --tcp-idle-timeout, --tcp-drain-timeout,
// --proxy-protocol-from), read with config.ts's accessors so precedence and messages match.
import { parsePortRange, type PortRange } from '../routing/tag-options.js';
import { CidrError, parseCidrList } from '../proxy/cidr.js';

export interface L4Config {
  /** ports TCP services may be served on; undefined = none (no tag opens a port) */
  readonly tcpPorts?: PortRange;
  /** the address TCP ports are opened on */
  readonly tcpHost: string;
  /** a TCP connection with no byte either way for this long is closed */
  readonly idleMs: number;
  /** how long connections to a server that left the table may go on */
  readonly drainMs: number;
  /** a TLS ClientHello (SNI passthrough) must be complete within this long of the accept */
  readonly helloTimeoutMs?: number;
  /** peers whose PROXY protocol header (v1/v2) is read on accept; others sending one are closed */
  readonly proxyProtocolFrom: readonly string[];
}

export const DEFAULT_TCP_IDLE_MS = 600_000;
export const DEFAULT_TCP_DRAIN_MS = 30_000;
export const DEFAULT_HELLO_TIMEOUT_MS = 5_000;

interface Accessors {
  str(name: string): string | undefined;
  duration(name: string, def: number): number;
  source(name: string): string;
  fail(message: string): never;
}

export function parseL4Config(a: Accessors, listenHost: string): L4Config {
  const portsText = a.str('tcp-ports');
  let tcpPorts: PortRange | undefined;
  if (portsText !== undefined) {
    tcpPorts = parsePortRange(portsText);
    if (tcpPorts === undefined) a.fail(`${a.source('tcp-ports')}: expected a port or a range such as 7000-7999, got "${portsText}"`);
  }
  let proxyProtocolFrom: readonly string[] = [];
  const ppText = a.str('proxy-protocol-from');
  if (ppText !== undefined) {
    try {
      proxyProtocolFrom = parseCidrList(ppText).map((r) => r.text);
    } catch (err) {
      if (err instanceof CidrError) a.fail(`${a.source('proxy-protocol-from')}: ${err.message}`);
      throw err;
    }
  }
  return {
    ...(tcpPorts ? { tcpPorts } : {}),
    tcpHost: a.str('tcp-host') ?? listenHost,
    idleMs: a.duration('tcp-idle-timeout', DEFAULT_TCP_IDLE_MS),
    drainMs: a.duration('tcp-drain-timeout', DEFAULT_TCP_DRAIN_MS),
    helloTimeoutMs: a.duration('tcp-hello-timeout', DEFAULT_HELLO_TIMEOUT_MS),
    proxyProtocolFrom,
  };
}
