// Compile once, render many: a render is a pure function of (template, RenderData) that returns the
// text plus what the template read, so the caller knows which Consul data to watch and whether the
// output is complete (consul-template writes nothing until every dependency has data).
import Handlebars from 'handlebars';
import type { Dependency, RenderData } from './dependencies.js';
import { DependencyRecorder, makeHelpers } from './helpers.js';

export class TemplateError extends Error {
  constructor(readonly code: 'ERR_TEMPLATE_COMPILE' | 'ERR_TEMPLATE_RENDER', message: string) {
    super(message);
  }
}

export interface CompiledTemplate {
  readonly name: string;
  readonly render: (data: RenderData) => RenderOutcome;
}

export interface RenderOutcome {
  readonly output: string;
  /** every dependency the template read, in first-use order */
  readonly deps: readonly Dependency[];
  /** dependencies without data yet: the output is incomplete and must not be written */
  readonly missing: readonly Dependency[];
  /** keys read with `key` that do not exist in Consul: also incomplete */
  readonly absentKeys: readonly string[];
  /** true when the output may be written */
  readonly complete: boolean;
  /** Consul values left out of the output because they could not be written safely */
  readonly warnings: readonly string[];
}

/** Compiles a template; syntax errors throw TemplateError ERR_TEMPLATE_COMPILE naming `name`. */
export function compileTemplate(source: string, name: string): CompiledTemplate {
  // An isolated environment: no helper or partial registered by anyone else leaks in.
  const hb = Handlebars.create();
  let fn: Handlebars.TemplateDelegate;
  try {
    hb.parse(source);
    // Configuration files are not HTML: never escape.
    fn = hb.compile(source, { noEscape: true, strict: false });
  } catch (err) {
    throw new TemplateError('ERR_TEMPLATE_COMPILE', `template ${name}: ${(err as Error).message}`);
  }
  return {
    name,
    render(data: RenderData): RenderOutcome {
      const rec = new DependencyRecorder();
      let output: string;
      try {
        output = fn({}, { helpers: makeHelpers(data, rec) as Record<string, Function> });
      } catch (err) {
        // With data still missing, helpers return empty values and a later helper may choke on them:
        // that is not the template's fault. Report what is missing so the watcher fetches it.
        if (rec.missing.size > 0) {
          return { output: '', deps: [...rec.deps.values()], missing: [...rec.missing.values()], absentKeys: [...rec.absentKeys], complete: false, warnings: [...rec.warnings] };
        }
        throw new TemplateError('ERR_TEMPLATE_RENDER', `template ${name}: ${(err as Error).message}`);
      }
      const missing = [...rec.missing.values()];
      const absentKeys = [...rec.absentKeys];
      return { output, deps: [...rec.deps.values()], missing, absentKeys, complete: missing.length === 0 && absentKeys.length === 0, warnings: [...rec.warnings] };
    },
  };
}
