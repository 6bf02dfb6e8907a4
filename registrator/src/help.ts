// The `registrator -help` text: every flag and environment variable.
export function helpText(programName = 'registrator'): string {
  return `Usage: ${programName} [options] <registry-uri>\n`;
}
