// Go/Consul duration strings ("10s", "1m30s", "500ms", "1.5h"): Consul rejects anything else,
// so the mapper validates them before a registration can fail at the agent.

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000,
};
const WHOLE = /^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/** Milliseconds of a Go duration string, or undefined when it is not one. "0" is zero. Signs are refused. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  if (!WHOLE.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(PART)) total += Number(m[1]) * UNIT_MS[m[2]];
  return Number.isFinite(total) ? total : undefined;
}

/** True for a Go duration strictly greater than zero (what Consul wants for intervals, timeouts, TTLs). */
export function isPositiveDuration(text: string): boolean {
  const ms = parseGoDuration(text);
  return ms !== undefined && ms > 0;
}
