// Go-style durations as Consul accepts them: "10s", "1m30s", "250ms", or a JSON number of nanoseconds.
// Builtins only: this directory is copied into a container that has nothing but the node binary.

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds, or undefined when the text is not a Go duration. */
export function parseGoDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * UNIT_MS[m[2]];
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== s.length) return undefined;
  return total;
}

/** A duration field of a JSON body: string (Go syntax) or number (nanoseconds, Go's time.Duration). */
export function durationField(value: unknown): number | undefined | 'invalid' {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'number') return value / 1e6;
  if (typeof value === 'string') return parseGoDuration(value) ?? 'invalid';
  return 'invalid';
}

/** Go duration text for a millisecond count, the way Consul echoes check definitions ("10s"). */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h0m0s`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m0s`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
