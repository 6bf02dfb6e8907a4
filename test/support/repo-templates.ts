// The shipped templates (templates/*.hbs) compiled, found from src (tsx) or dist/ (compiled) alike.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileTemplate, type CompiledTemplate } from '../../balancer/src/render/template.js';
import { repoRoot } from './repo-root.js';

export function shippedTemplate(file: 'balancer.conf.hbs' | 'nginx-upstreams.conf.hbs'): CompiledTemplate {
  return compileTemplate(readFileSync(join(repoRoot(), 'templates', file), 'utf8'), file);
}
