// The dump file read at start: what was served before, to serve while Consul does not answer. A file
// that cannot be used is moved aside (never overwritten: it may hold admin upstreams an operator
// wants back) and the start goes on from Consul.
import type pino from 'pino';
import { DumpFileError, loadDump, quarantineDump, type DumpContents } from '../../persistence/dump-file.js';

export async function loadStartDump(file: string | undefined, log: pino.Logger): Promise<DumpContents | undefined> {
  if (!file) return undefined;
  try {
    const dump = await loadDump(file);
    if (dump) log.info({ file, savedAt: dump.savedAt, upstreams: Object.keys(dump.table.upstreams).length }, 'dump file loaded');
    return dump;
  } catch (err) {
    if (!(err instanceof DumpFileError)) throw err;
    if (err.unusable) {
      const aside = await quarantineDump(file).catch((e: Error) => `(could not be moved: ${e.message})`);
      log.error({ err: err.message, code: err.code, file, keptAs: aside }, `dump file unusable, kept aside as ${aside}; starting from Consul`);
    } else {
      log.error({ err: err.message, code: err.code }, 'dump file ignored');
    }
    return undefined;
  }
}
