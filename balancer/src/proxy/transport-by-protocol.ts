// The upstream transport of a worker, chosen per request by the upstream's protocol (`proto=` tag,
// UpstreamRequest.protocol): HTTP/1.1 through the engine's transport, h2 / h2c / grpc through
// http2/upstream-transport.ts. Pools are per transport; table changes reach both.
import type { RouteTable, ServerSpec } from '../routing/types.js';
import type { ServerPoolStats, UpstreamHandler, UpstreamRequest, UpstreamTransport } from './transport.js';

export class TransportByProtocol implements UpstreamTransport {
  constructor(readonly http1: UpstreamTransport, readonly http2: UpstreamTransport) {}

  dispatch(server: ServerSpec, request: UpstreamRequest, handler: UpstreamHandler): void {
    const p = request.protocol;
    if (p === 'h2' || p === 'h2c' || p === 'grpc') this.http2.dispatch(server, request, handler);
    else this.http1.dispatch(server, request, handler);
  }

  retain(table: RouteTable): void {
    this.http1.retain(table);
    this.http2.retain(table);
  }

  drop(serverIds: Iterable<string>): void {
    const ids = [...serverIds];
    this.http1.drop(ids);
    this.http2.drop(ids);
  }

  stats(serverId: string): ServerPoolStats {
    const a = this.http1.stats(serverId);
    const b = this.http2.stats(serverId);
    return { connected: a.connected + b.connected, pending: a.pending + b.pending, running: a.running + b.running };
  }

  async closeGracefully(): Promise<void> {
    await Promise.all([this.http1.closeGracefully(), this.http2.closeGracefully()]);
  }

  async destroy(): Promise<void> {
    await Promise.all([this.http1.destroy(), this.http2.destroy()]);
  }
}
