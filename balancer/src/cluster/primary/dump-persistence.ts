// The dump file follows the table: every change is saved (debounced by the writer), and the start
// state is saved once unless it is exactly the dump that was loaded.
import type { DumpContents, DumpWriter } from '../../persistence/dump-file.js';
import type { TableHolder } from '../../routing/table-holder.js';

export function followTable(writer: Pick<DumpWriter, 'save'>, holder: TableHolder, loaded: DumpContents | undefined): void {
  const save = () => writer.save({ table: holder.current(), adminUpstreams: holder.adminUpstreams(), snapshot: holder.currentSnapshot(), adminPolicies: holder.policyOverrides().admin });
  holder.subscribe(() => save());
  if (!loaded || loaded.table.version !== holder.current().version) save();
}
