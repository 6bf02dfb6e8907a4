// The shipped templates (templates/*.hbs) compiled, found from src (tsx) or dist/ (compiled) alike.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileTemplate, type CompiledTemplate } from '../../balancer/src/render/template.js';

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'templates', 'balancer.conf.hbs')) && existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('templates/ not found above the test file');
}

export function shippedTemplate(file: 'balancer.conf.hbs' | 'nginx-upstreams.conf.hbs'): CompiledTemplate {
  return compileTemplate(readFileSync(join(repoRoot(), 'templates', file), 'utf8'), file);
}
