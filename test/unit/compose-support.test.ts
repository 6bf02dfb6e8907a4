// Pure parts of the compose end-to-end fixtures: reading `ldd` output for the stand-in node image, and
// choosing which node_modules directories the CI app image needs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { NodeImageError, parseLddOutput } from '../support/node-image.js';
import { productionModulePaths } from '../support/demo-images.js';

describe('parseLddOutput', () => {
  it('lists resolved libraries and the loader, skips the vDSO, sorted', () => {
    const text = [
      '\tlinux-vdso.so.1 (0x00007ffd5d1f5000)',
      '\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f2a7ebef000)',
      '\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f2a7e800000)',
      '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2a7e61e000)',
      '\t/lib64/ld-linux-x86-64.so.2 (0x00007f2a7ec07000)',
      '',
    ].join('\n');
    assert.deepEqual(parseLddOutput(text), [
      '/lib/x86_64-linux-gnu/libc.so.6',
      '/lib/x86_64-linux-gnu/libdl.so.2',
      '/lib/x86_64-linux-gnu/libstdc++.so.6',
      '/lib64/ld-linux-x86-64.so.2',
    ]);
  });

  it('refuses a binary with a missing library', () => {
    assert.throws(() => parseLddOutput('\tlibnode.so.108 => not found\n'),
      (e: unknown) => e instanceof NodeImageError && e.code === 'ERR_NODE_IMAGE_LDD');
  });
});

describe('productionModulePaths', () => {
  const root = path.join(path.sep, 'repo');
  const abs = (p: string) => path.join(root, p);

  it('keeps top-level entries and drops the ones nested inside them', () => {
    const parseable = [root, abs('node_modules/fastify'), abs('node_modules/fastify/node_modules/semver'),
      abs('node_modules/@fastify/ajv-compiler'), abs('node_modules/pino')].join('\n');
    assert.deepEqual(productionModulePaths(root, parseable),
      ['node_modules/@fastify/ajv-compiler', 'node_modules/fastify', 'node_modules/pino']);
  });

  it('ignores the project itself, blank lines and paths outside the project', () => {
    assert.deepEqual(productionModulePaths(root, `${root}\n\n/elsewhere/node_modules/x\n`), []);
  });

  it('does not treat a name prefix as nesting', () => {
    const parseable = [abs('node_modules/pino'), abs('node_modules/pino-std-serializers')].join('\n');
    assert.deepEqual(productionModulePaths(root, parseable), ['node_modules/pino', 'node_modules/pino-std-serializers']);
  });
});
