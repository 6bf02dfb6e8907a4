// SERVICE_* metadata of a container, resolved for one exposed port.
// Precedence (highest first): port-specific label, port-specific env, general label, general env.
// Keys are lower-cased without the SERVICE_ prefix (and without the "<port>_" part), as registrator does.

export interface MetadataEntry {
  readonly value: string;
  /** the key as the user wrote it, e.g. SERVICE_80_CHECK_HTTP: named in warnings */
  readonly sourceKey: string;
  readonly fromPort: boolean;
}

/** key (lower-case, no prefix) -> entry */
export type PortMetadata = ReadonlyMap<string, MetadataEntry>;

export interface ParsedKey {
  /** the port number as written, when the key is port-specific */
  readonly port?: string;
  /** lower-cased key without prefix and port */
  readonly key: string;
}

const PREFIX = 'SERVICE_';

/** Parses SERVICE_<KEY> / SERVICE_<port>_<KEY>; undefined when it is not a service key. */
export function parseServiceKey(rawKey: string): ParsedKey | undefined {
  if (!rawKey.startsWith(PREFIX) || rawKey.length === PREFIX.length) return undefined;
  const rest = rawKey.slice(PREFIX.length).toLowerCase();
  const underscore = rest.indexOf('_');
  if (underscore > 0 && /^\d+$/.test(rest.slice(0, underscore)) && underscore < rest.length - 1) {
    return { port: rest.slice(0, underscore), key: rest.slice(underscore + 1) };
  }
  return { key: rest };
}

/** A port written in a key must be a canonical TCP/UDP port number. */
export function isValidPortText(port: string): boolean {
  return /^[1-9]\d{0,4}$/.test(port) && Number(port) <= 65535;
}

export interface RawMetadataSource {
  readonly env: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
}

/** All SERVICE_* pairs in precedence order: env first, labels after (later wins). Empty values count as unset. */
export function servicePairs(src: RawMetadataSource): Array<{ rawKey: string; value: string }> {
  const pairs: Array<{ rawKey: string; value: string }> = [];
  for (const kv of src.env) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    pairs.push({ rawKey: kv.slice(0, eq), value: kv.slice(eq + 1) });
  }
  for (const [k, v] of Object.entries(src.labels)) pairs.push({ rawKey: k, value: v ?? '' });
  return pairs.filter((p) => p.rawKey.startsWith(PREFIX) && p.value !== '');
}

/** The metadata that applies to one exposed port (number only: "53" covers 53/tcp and 53/udp). */
export function metadataForPort(src: RawMetadataSource, exposedPort: string): PortMetadata {
  const general = new Map<string, MetadataEntry>();
  const specific = new Map<string, MetadataEntry>();
  for (const { rawKey, value } of servicePairs(src)) {
    const parsed = parseServiceKey(rawKey);
    if (!parsed) continue;
    if (parsed.port === undefined) {
      general.set(parsed.key, { value, sourceKey: rawKey, fromPort: false });
    } else if (parsed.port === exposedPort) {
      specific.set(parsed.key, { value, sourceKey: rawKey, fromPort: true });
    }
  }
  const merged = new Map(general);
  for (const [k, e] of specific) merged.set(k, e);
  return merged;
}

/** Port-specific keys whose port is not a valid port number: reported once per container. */
export function badPortKeys(src: RawMetadataSource): Array<{ rawKey: string; value: string; port: string }> {
  const out: Array<{ rawKey: string; value: string; port: string }> = [];
  for (const { rawKey, value } of servicePairs(src)) {
    const parsed = parseServiceKey(rawKey);
    if (parsed?.port !== undefined && !isValidPortText(parsed.port)) out.push({ rawKey, value, port: parsed.port });
  }
  return out;
}

/** Valid port-specific keys naming a port the container neither exposes nor publishes (likely typos). */
export function portKeysForAbsentPorts(
  src: RawMetadataSource,
  portKeys: readonly string[],
): Array<{ rawKey: string; value: string; port: string }> {
  const present = new Set(portKeys.map((k) => k.split('/')[0]));
  const out: Array<{ rawKey: string; value: string; port: string }> = [];
  for (const { rawKey, value } of servicePairs(src)) {
    const parsed = parseServiceKey(rawKey);
    if (parsed?.port !== undefined && isValidPortText(parsed.port) && !present.has(parsed.port)) {
      out.push({ rawKey, value, port: parsed.port });
    }
  }
  return out;
}
