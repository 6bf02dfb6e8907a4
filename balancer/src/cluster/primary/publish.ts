// Dynamic mode: the workers start with the current table and then follow the holder, each change as
// a delta on the table they hold (the full table only at start or after a gap).
import type pino from 'pino';
import type { TableChange, TableHolder } from '../../routing/table-holder.js';
import type { RouteTable } from '../../routing/types.js';
import type { Supervisor } from '../supervisor.js';

export type Publisher = Pick<Supervisor, 'start' | 'publish'>;

export async function startPublishing(supervisor: Publisher, holder: TableHolder, log: pino.Logger): Promise<void> {
  const startTable = holder.current();
  await supervisor.start(startTable);
  const publish = (table: RouteTable, change?: TableChange) => supervisor.publish(table, change).catch((err) => log.error({ err }, 'publish failed'));
  holder.subscribe((change) => void publish(change.table, change));
  // changes that arrived while the workers were starting
  if (holder.current().version !== startTable.version) void publish(holder.current());
}
