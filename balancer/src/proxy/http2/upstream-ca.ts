// --upstream-ca <file>: read once at start into the config (http2.upstreamCa), sent to every worker
// with the rest of the HTTP/2 config; the primary's shared gRPC checks use it too.
import { readCaFile } from '../../tls/ca-file.js';
import type { Http2Config } from './http2-config.js';

export async function withUpstreamCa<T extends { readonly http2: Http2Config }>(config: T): Promise<T> {
  const file = config.http2.upstreamCaFile;
  if (file === undefined) return config;
  return { ...config, http2: { ...config.http2, upstreamCa: await readCaFile('--upstream-ca', file, 'ERR_UPSTREAM_CA') } };
}
