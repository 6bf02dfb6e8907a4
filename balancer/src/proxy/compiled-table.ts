// The worker's view of one routing table: the frozen table plus what is compiled from it (router,
// one picker per upstream). Built once per swap; the runtime holds the only mutable reference.
import { compileRouter, type Router } from '../routing/router.js';
import { createPicker } from '../balancing/picker.js';
import type { PeerState, Picker, PickerEnv } from '../balancing/types.js';
import type { RouteTable, ScriptSpec, UpstreamSpec } from '../routing/types.js';
import { upstreamOf } from '../routing/table-upstreams.js';
import { SharedMap } from '../routing/shared-map.js';
import { compileScripts, type CompiledScripts, type ScriptFailure } from '../scripts/script-host.js';
import type { ScriptThread } from '../scripts/script-thread.js';

export interface CompiledTable {
  readonly table: RouteTable;
  readonly router: Router;
  readonly pickers: ReadonlyMap<string, Picker>;
  /** content key of each upstream spec, to keep pickers (and their RR/WRR state) across swaps */
  readonly specKeys: ReadonlyMap<string, string>;
  /** request scripts of this table, compiled; undefined when it has none (the hot path checks only this) */
  readonly scripts?: CompiledScripts;
}

/** Where a worker runs its scripts, and reports script failures and scripts that would not load. */
export interface ScriptEvents {
  readonly thread: ScriptThread;
  onFailure(f: ScriptFailure): void;
  onLoadError(spec: ScriptSpec, err: Error): void;
}

/** Serialized spec: tables arrive by IPC, so object identity says nothing; content does. */
function specKey(spec: UpstreamSpec): string {
  return JSON.stringify(spec);
}

/**
 * Compile `table`, reusing `prev`'s pickers for upstreams whose spec did not change. `changed` (a
 * delta's upserted and removed names): only those are looked at, the rest is shared with `prev`, so
 * the cost follows the change, not the table.
 */
export function compileTable(table: RouteTable, prev: CompiledTable | undefined, peers: PeerState, env: PickerEnv, scriptEvents?: ScriptEvents, changed?: ReadonlySet<string>): CompiledTable {
  let pickers: ReadonlyMap<string, Picker>;
  let specKeys: ReadonlyMap<string, string>;
  // upstreamOf: a delta's table shares its upstreams with the previous one (no record made per change)
  const one = (name: string, spec: UpstreamSpec, keysOut: Map<string, string | undefined>, pickersOut: Map<string, Picker | undefined>) => {
    // a delta shares unchanged specs with the previous table: same object, same key, no serialization
    const key = prev !== undefined && upstreamOf(prev.table, name) === spec ? prev.specKeys.get(name) ?? specKey(spec) : specKey(spec);
    keysOut.set(name, key);
    const kept = prev !== undefined && prev.specKeys.get(name) === key ? prev.pickers.get(name) : undefined;
    pickersOut.set(name, kept ?? createPicker(spec, peers, env));
  };
  if (prev !== undefined && changed !== undefined) {
    // the maps share every unchanged entry with prev's (a copy of 5,000 entries per delta costs ms)
    const keyChanges = new Map<string, string | undefined>();
    const pickerChanges = new Map<string, Picker | undefined>();
    for (const name of changed) {
      const spec = upstreamOf(table, name);
      if (spec !== undefined) one(name, spec, keyChanges, pickerChanges);
      else {
        pickerChanges.set(name, undefined);
        keyChanges.set(name, undefined);
      }
    }
    pickers = SharedMap.of(prev.pickers).with(pickerChanges);
    specKeys = SharedMap.of(prev.specKeys).with(keyChanges);
  } else {
    const allPickers = new Map<string, Picker>();
    const allKeys = new Map<string, string>();
    const all = table.upstreams;
    for (const name of Object.keys(all)) one(name, all[name], allKeys, allPickers);
    pickers = allPickers;
    specKeys = allKeys;
  }
  const router = compileRouter(table, prev?.router, changed);
  // no thread is started for a worker whose tables never carried a script
  const scripts = scriptEvents === undefined || (table.scripts === undefined && prev?.scripts === undefined) ? undefined
    : compileScripts(table, prev?.scripts, (f) => scriptEvents.onFailure(f), (spec, err) => scriptEvents.onLoadError(spec, err), scriptEvents.thread);
  return scripts === undefined ? { table, router, pickers, specKeys } : { table, router, pickers, specKeys, scripts };
}

/** Names of upstreams added, removed or changed between two compiled tables (among `among` when given). */
export function changedUpstreams(prev: CompiledTable | undefined, next: CompiledTable, among?: ReadonlySet<string>): Set<string> {
  const changed = new Set<string>();
  if (among !== undefined && prev !== undefined) {
    for (const name of among) if (prev.specKeys.get(name) !== next.specKeys.get(name)) changed.add(name);
    return changed;
  }
  for (const [name, key] of next.specKeys) if (prev?.specKeys.get(name) !== key) changed.add(name);
  if (prev !== undefined) for (const name of prev.specKeys.keys()) if (!next.specKeys.has(name)) changed.add(name);
  return changed;
}
