// A balancer Config from command-line words, as the binary parses them (no environment, one core):
// for tests that start the primary in-process.
import { parseBalancerArgs, type Config } from '../../balancer/src/config.js';

/** Throws on words the binary would refuse (a test's mistake, not a case under test). */
export function balancerConfig(argv: string[]): Config {
  const c = parseBalancerArgs(argv, {}, { cores: 1 });
  if (c.kind !== 'config') throw new Error(`bad test config: ${JSON.stringify(c)}`);
  return c;
}
