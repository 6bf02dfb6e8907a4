// The repository's root and programs, found alike from test/ (tsx) and dist/test/ (compiled): the
// nearest folder above that holds package.json and templates/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'templates', 'balancer.conf.hbs')) && existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('repository root (package.json + templates/) not found above test/support');
}

/** bin/balancer.js, to run the balancer as operators do */
export function balancerBin(): string {
  return join(repoRoot(), 'bin', 'balancer.js');
}
