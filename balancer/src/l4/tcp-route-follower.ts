// Keeps a worker's TCP route table in step with its routing table: the TCP services' names are
// tracked (a delta looks only at its own names), and the route table is rebuilt only when one of
// their specs changed. TCP services are few; the catalog may hold thousands of HTTP ones.
import type { RouteTable, UpstreamSpec } from '../routing/types.js';
import { upstreamOf } from '../routing/table-upstreams.js';
import type { PortRange } from '../routing/tag-options.js';
import { buildTcpRoutes, EMPTY_TCP_ROUTES, type TcpRouteTable } from './tcp-routes.js';

export class TcpRouteFollower {
  #specs = new Map<string, UpstreamSpec>();
  #routes: TcpRouteTable = EMPTY_TCP_ROUTES;

  /** `tlsPorts`: --tls-listen ports (a plain proto=tcp claim of one is refused) */
  constructor(private readonly allowed: PortRange | undefined, private readonly tlsPorts: readonly number[] = []) {}

  get routes(): TcpRouteTable {
    return this.#routes;
  }

  /** `changed`: the names a delta upserted or removed; absent = look at the whole table. Returns whether the routes changed. */
  follow(table: RouteTable, changed?: ReadonlySet<string>): boolean {
    const next = new Map(this.#specs);
    const names = changed ?? new Set([...Object.keys(table.upstreams), ...this.#specs.keys()]);
    let touched = false;
    for (const name of names) {
      const spec = upstreamOf(table, name);
      const tcp = spec !== undefined && spec.listen !== undefined && spec.listen.length > 0 ? spec : undefined;
      if (next.get(name) === tcp) continue;
      if (tcp === undefined) next.delete(name);
      else next.set(name, tcp);
      touched = true;
    }
    if (!touched) return false;
    this.#specs = next;
    this.#routes = buildTcpRoutes(next.values(), this.allowed, this.tlsPorts);
    return true;
  }
}
