// Tag lists: comma separated, "\," is a literal comma inside a tag (as registrator's SERVICE_TAGS).

/** Splits on unescaped commas, unescapes "\,", trims, drops empty items. */
export function splitEscapedList(text: string): string[] {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\' && text[i + 1] === ',') {
      current += ',';
      i++;
    } else if (ch === ',') {
      out.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  out.push(current);
  return out.map((t) => t.trim()).filter((t) => t.length > 0);
}

/** Values a forced tag (-tags) may reference as {{.Name}}. */
export interface TagTemplateValues {
  readonly Hostname: string;
  readonly ContainerName: string;
  readonly ContainerHostname: string;
  readonly ContainerID: string;
  readonly Image: string;
}

const PLACEHOLDER = /\{\{\s*\.([A-Za-z]+)\s*\}\}/g;

/**
 * Expands {{.Hostname}}-style placeholders in a forced tag. Returns the unknown placeholder names too,
 * so the caller can warn; an unknown placeholder is left as written.
 */
export function expandTagTemplate(tag: string, values: TagTemplateValues): { tag: string; unknown: string[] } {
  const unknown: string[] = [];
  const expanded = tag.replace(PLACEHOLDER, (whole, name: string) => {
    if (Object.prototype.hasOwnProperty.call(values, name)) return values[name as keyof TagTemplateValues];
    unknown.push(name);
    return whole;
  });
  return { tag: expanded, unknown };
}
