// The command lines of a markdown document as a reader sees them: the lines of its indented code
// blocks (four spaces), section by section, exactly as written (comments included: the shell drops them).

/** The lines of the section under `## heading` (up to the next heading of level 1 or 2). */
export function sectionLines(markdown: string, heading: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.trim() === `## ${heading}`);
  if (start < 0) throw new Error(`no "## ${heading}" section`);
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((l) => /^#{1,2} /.test(l));
  return end < 0 ? rest : rest.slice(0, end);
}

/** The code-block lines among `lines` (four leading spaces, then text), without the indent, in order. */
export function codeLines(lines: readonly string[]): string[] {
  return lines.filter((l) => /^ {4}\S/.test(l)).map((l) => l.slice(4).trimEnd());
}

/** Every code-block line of the document. */
export function allCodeLines(markdown: string): string[] {
  return codeLines(markdown.split('\n'));
}
