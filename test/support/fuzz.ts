// Seeded fuzzing support: a small PRNG (mulberry32), generators of hostile values, and a bounded run
// loop that reports the seed and iteration of the first failure so it can be replayed exactly.
//   FUZZ_SEED=<n>      replay (default: a fresh seed, printed on failure)
//   FUZZ_SCALE=<x>     iterations multiplier (default 1: the CI variant, about a minute for all targets)
//   FUZZ_BUDGET_MS=<n> per-target time bound (default 12000; long runs: raise both)

import { AssertionError } from 'node:assert';

export type Rng = () => number;

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FuzzSettings {
  readonly seed: number;
  readonly scale: number;
  readonly budgetMs: number;
}

export function fuzzSettings(env: NodeJS.ProcessEnv = process.env): FuzzSettings {
  const seed = env.FUZZ_SEED !== undefined && /^\d+$/.test(env.FUZZ_SEED) ? Number(env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
  const scale = env.FUZZ_SCALE !== undefined && Number(env.FUZZ_SCALE) > 0 ? Number(env.FUZZ_SCALE) : 1;
  const budgetMs = env.FUZZ_BUDGET_MS !== undefined && Number(env.FUZZ_BUDGET_MS) > 0 ? Number(env.FUZZ_BUDGET_MS) : 12_000;
  return { seed, scale, budgetMs };
}

/**
 * Runs `body` for `iterations` x scale cases (or until the time budget), each with its own PRNG derived
 * from (seed, case index) so one failing case replays alone. A failure is rethrown naming both.
 */
export async function fuzz(
  name: string,
  iterations: number,
  body: (rng: Rng, caseIndex: number) => void | Promise<void>,
  settings: FuzzSettings = fuzzSettings(),
): Promise<{ cases: number; seed: number }> {
  const total = Math.max(1, Math.round(iterations * settings.scale));
  const end = Date.now() + settings.budgetMs;
  const only = process.env.FUZZ_CASE !== undefined ? Number(process.env.FUZZ_CASE) : undefined;
  let cases = 0;
  for (let i = only ?? 0; i < (only !== undefined ? only + 1 : total); i++) {
    if (only === undefined && Date.now() > end) break;
    const rng = mulberry32((settings.seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
    try {
      await body(rng, i);
    } catch (err) {
      const e = err as Error;
      e.message = `fuzz ${name} failed: FUZZ_SEED=${settings.seed} FUZZ_CASE=${i} to replay\n${e.message}`;
      throw e;
    }
    cases++;
  }
  return { cases, seed: settings.seed };
}

/**
 * assert.ok whose message is built only on failure: a fuzz case's description (its input as JSON) can be
 * hundreds of KB, and an eagerly built message per checked server cost seconds per case.
 */
export function holds(ok: unknown, describe: () => string): asserts ok {
  if (!ok) throw new AssertionError({ message: describe(), actual: ok, expected: true, operator: '==' });
}

export const int = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
export const chance = (rng: Rng, p: number): boolean => rng() < p;
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)];
}

const FRAGMENTS = [
  ';', '}', '{', '#', ' ', '\t', '\n', '\r\n', '\u0000', '"', "'", '`', '\\', '/', '..', '%', '%zz', '%41', '?', '&', '=', ':', '@',
  '[', ']', '::1', '${x}', '{{x}}', 'ü', '\u202e', '\ud83d\ude00', '\ud800', 'upstream evil {', 'server 6.6.6.6:80;', '<script>',
  'constructor', '__proto__', 'toString', '-', '_', '.', ',', '*', '|', '!', '~', '+',
];
const WORDS = ['web', 'api', 'v1', 'health', 'x', 'a-b', 'node1', '10.0.0.1', 'localhost', 'lb', 'wrr', 'chash', 'header', 'ip', 'uri', '80', '8080', '1', '0', '-1', '65536', '1.5', '1e3', '2s', '999h'];

/** A string mixing plain words and hostile fragments; now and then a long one. */
export function hostileString(rng: Rng, maxParts = 6): string {
  if (chance(rng, 0.03)) return 'a'.repeat(int(rng, 200, 5000));
  const parts = int(rng, 0, maxParts);
  let s = '';
  for (let i = 0; i < parts; i++) s += chance(rng, 0.55) ? pick(rng, WORDS) : pick(rng, FRAGMENTS);
  return s;
}

/** Any JSON-ish value: the wrong type is the most common bug. */
export function anyValue(rng: Rng, depth = 0): unknown {
  switch (int(rng, 0, depth > 2 ? 6 : 8)) {
    case 0: return hostileString(rng);
    case 1: return pick(rng, [0, -1, 1, 80, 1.5, 65535, 65536, 2 ** 53, -0, 1e308]);
    case 2: return null;
    case 3: return undefined;
    case 4: return chance(rng, 0.5);
    case 5: return pick(rng, WORDS);
    case 6: return '';
    case 7: return Array.from({ length: int(rng, 0, 4) }, () => anyValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = int(rng, 0, 4); i > 0; i--) o[pick(rng, [...WORDS, 'host', 'port', 'servers', '__proto__', 'constructor'])] = anyValue(rng, depth + 1);
      return o;
    }
  }
}

export const GOOD_HOSTS = ['10.0.0.1', '127.0.0.1', '::1', '2001:db8::5', 'web.service.consul', 'my_app_1'];
