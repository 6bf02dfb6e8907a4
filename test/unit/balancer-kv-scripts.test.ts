// Request scripts in Consul KV as tables: the two value forms (JSON document / bare module), a bad
// script a warning for its key only (syntax error with its line), unchanged keys not re-checked,
// admin uploads winning over KV by name, the holder's effective list and the admin routes' KV writes
// (a failed write: 503, nothing changed), and the flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { buildAdminApp } from '../../balancer/src/admin/app.js';
import { parseBalancerArgs } from '../../balancer/src/config.js';
import { TableHolder } from '../../balancer/src/routing/table-holder.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { ScriptSpec } from '../../balancer/src/routing/types.js';
import { effectiveScripts, scriptKvValue, scriptsFromKv, uploadFromKvValue } from '../../balancer/src/scripts/kv-scripts.js';
import type { ScriptStore } from '../../balancer/src/scripts/script-kv-sync.js';
import { checkScript } from '../../balancer/src/scripts/script-source.js';

const P = 'balancer/scripts/';
const HOOK = 'export function onRequest(req) { return { headers: { "x-kv": "1" } }; }';
const logger = pino({ level: 'silent' });

test('KV values: JSON document or bare module, refusals with a reason', () => {
  const cases: [string, unknown][] = [
    [HOOK, { name: 'a', source: HOOK, services: ['*'] }],
    [JSON.stringify({ source: HOOK, services: ['web'], timeoutMs: 20, maxFailures: 2 }), { name: 'a', source: HOOK, services: ['web'], timeoutMs: 20, maxFailures: 2 }],
    [JSON.stringify({ source: HOOK }), { name: 'a', source: HOOK, services: ['*'], timeoutMs: undefined, maxFailures: undefined }],
    // not JSON although it starts with "{": a module (a block) as written
    ['{ var x = 1; }\nexport function onRequest() {}', { name: 'a', source: '{ var x = 1; }\nexport function onRequest() {}', services: ['*'] }],
    ['[1]', { name: 'a', source: '[1]', services: ['*'] }],
    [JSON.stringify({ source: HOOK, colour: 'red' }), 'unknown field "colour"'],
    [JSON.stringify({ services: ['web'] }), '"source" must be the module text'],
    [JSON.stringify({ source: HOOK, services: 'web' }), '"services" must be an array of service names'],
    [JSON.stringify({ source: HOOK, timeoutMs: '5' }), '"timeoutMs" must be a number'],
  ];
  for (const [value, want] of cases) assert.deepEqual(uploadFromKvValue('a', value), want, value);
  const spec = checkScript({ name: 'a', source: HOOK, services: ['web', 'api'], timeoutMs: 30, maxFailures: 4 });
  const back = uploadFromKvValue('a', scriptKvValue(spec));
  assert.deepEqual(back, { name: 'a', source: HOOK, services: ['api', 'web'], timeoutMs: 30, maxFailures: 4 }, 'what the admin API writes reads back as the same upload');
});

test('a whole prefix: bad scripts are warnings for their key only, the rest load', () => {
  const r = scriptsFromKv(P, {
    good: HOOK,
    broken: 'export function onRequest() {\n  return ]\n}',
    nohook: 'var x = 1;',
    'bad name!': HOOK,
    'nested/x': HOOK,
    baddoc: JSON.stringify({ source: HOOK, timeoutMs: 999999 }),
  });
  assert.deepEqual(r.scripts.map((s) => [s.name, s.origin, s.services]), [['good', 'kv', ['*']]]);
  assert.equal(r.warnings.length, 5, r.warnings.join('\n'));
  const w = (key: string) => r.warnings.find((x) => x.startsWith(`consul kv ${P}${key}:`)) ?? '';
  assert.match(w("broken"), /Unexpected token/);
  assert.match(w('broken'), /at line 2/);
  assert.match(w('nohook'), /exports neither onRequest nor onResponse/);
  assert.match(w('bad name!'), /script name/);
  assert.match(w('nested/x'), /expected balancer\/scripts\/<script name>/);
  assert.match(w('baddoc'), /timeout must be/);
});

test('an unchanged key is not checked again and keeps its load time; a changed one is', () => {
  const first = scriptsFromKv(P, { a: HOOK, b: HOOK }, new Map(), new Date('2026-01-01T00:00:00Z'));
  const again = scriptsFromKv(P, { a: HOOK, b: `${HOOK}\n// v2` }, first.cache, new Date('2026-01-02T00:00:00Z'));
  assert.equal(again.scripts[0], first.scripts[0], 'same object for the unchanged key');
  assert.equal(again.scripts[0].loadedAt, '2026-01-01T00:00:00.000Z');
  assert.equal(again.scripts[1].loadedAt, '2026-01-02T00:00:00.000Z');
  assert.notEqual(again.scripts[1].version, first.scripts[1].version);
  const gone = scriptsFromKv(P, {}, again.cache);
  assert.deepEqual(gone.scripts, []);
  assert.equal(gone.cache.size, 0);
});

test('admin uploads win over KV scripts of the same name; KV ones run after the admin ones', () => {
  const spec = (name: string, origin?: 'kv'): ScriptSpec => ({ ...checkScript({ name, source: `${HOOK}// ${name}${origin ?? ''}`, services: ['*'] }), ...(origin ? { origin } : {}) });
  const cases: { admin: ScriptSpec[]; kv: ScriptSpec[]; want: string[]; shadowed: string[] }[] = [
    { admin: [], kv: [], want: [], shadowed: [] },
    { admin: [spec('b'), spec('a')], kv: [], want: ['b:admin', 'a:admin'], shadowed: [] },
    { admin: [], kv: [spec('a', 'kv'), spec('c', 'kv')], want: ['a:kv', 'c:kv'], shadowed: [] },
    { admin: [spec('c')], kv: [spec('a', 'kv'), spec('c', 'kv')], want: ['c:admin', 'a:kv'], shadowed: ['c'] },
  ];
  for (const c of cases) {
    const r = effectiveScripts(c.admin, c.kv);
    assert.deepEqual(r.scripts.map((s) => `${s.name}:${s.origin ?? 'admin'}`), c.want);
    assert.deepEqual(r.shadowed, c.shadowed);
  }

  const holder = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger });
  assert.equal(holder.setKvScripts([spec('x', 'kv')]), true);
  assert.deepEqual(holder.current().scripts?.map((s) => s.origin), ['kv']);
  const admin = spec('x');
  assert.equal(holder.setScript(admin), true);
  assert.equal(holder.current().scripts?.length, 1);
  assert.equal(holder.current().scripts?.[0].version, admin.version, 'admin wins');
  assert.equal(holder.setKvScripts([spec('x', 'kv')]), false, 'a KV change under an admin script changes nothing');
  holder.deleteScript('x');
  assert.deepEqual(holder.current().scripts?.map((s) => `${s.name}:${s.origin}`), ['x:kv'], 'the KV one runs again once the admin one is deleted');
  assert.equal(holder.dropKvScript('x'), true);
  assert.equal(holder.current().scripts, undefined);
});

function fakeStore(fail = false): ScriptStore & { log: string[] } {
  const log: string[] = [];
  return {
    log, where: `consul kv ${P}`,
    async put(s) { if (fail) throw new Error('PUT -> 500: boom'); log.push(`put ${s.name} ${scriptKvValue(s)}`); },
    async delete(name) { if (fail) throw new Error('DELETE -> 500: boom'); log.push(`delete ${name}`); },
  };
}

test('admin routes with a script store: upload and delete write KV first; a failed write is a 503 and changes nothing', async () => {
  const holder = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger });
  const store = fakeStore();
  const app = buildAdminApp({ holder, defaults: DEFAULT_TABLE_DEFAULTS, logger, scriptStore: store });
  let res = await app.inject({ method: 'PUT', url: '/scripts/s1?services=web', headers: { 'content-type': 'application/javascript' }, payload: HOOK });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.json().origin, 'admin');
  assert.deepEqual(store.log, [`put s1 ${JSON.stringify({ source: HOOK, services: ['web'], timeoutMs: 50, maxFailures: 5 })}`]);
  holder.setKvScripts(scriptsFromKv(P, { s1: `${HOOK}//other`, s2: HOOK }).scripts);
  res = await app.inject({ method: 'GET', url: '/scripts' });
  assert.deepEqual(res.json().scripts.map((s: { name: string; origin: string }) => `${s.name}:${s.origin}`), ['s1:admin', 's2:kv']);
  assert.equal(res.json().kvShadowed[0].name, 's1');
  res = await app.inject({ method: 'DELETE', url: '/scripts/s2' });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(store.log.at(-1), 'delete s2');
  assert.deepEqual(holder.scripts().map((s) => s.name), ['s1'], 'a KV script deleted through the admin API is gone at once');
  await app.close();

  const failing = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger });
  const app2 = buildAdminApp({ holder: failing, defaults: DEFAULT_TABLE_DEFAULTS, logger, scriptStore: fakeStore(true) });
  res = await app2.inject({ method: 'PUT', url: '/scripts/s1', headers: { 'content-type': 'application/javascript' }, payload: HOOK });
  assert.equal(res.statusCode, 503);
  assert.equal(res.json().error, 'ERR_SCRIPT_STORE');
  assert.match(res.json().message, /consul kv balancer\/scripts\/: PUT -> 500: boom; nothing changed/);
  assert.deepEqual(failing.scripts(), []);
  failing.setKvScripts(scriptsFromKv(P, { s3: HOOK }).scripts);
  res = await app2.inject({ method: 'DELETE', url: '/scripts/s3' });
  assert.equal(res.statusCode, 503);
  assert.deepEqual(failing.scripts().map((s) => s.name), ['s3'], 'still there');
  await app2.close();
});

test('--scripts-kv flags', () => {
  const parse = (argv: string[]) => parseBalancerArgs(argv, {}, { cores: 1 });
  const on = parse(['--scripts-kv']);
  assert.equal(on.kind === 'config' && on.scriptsKvPrefix, 'balancer/scripts/');
  const off = parse([]);
  assert.equal(off.kind === 'config' && off.scriptsKvPrefix, undefined);
  const custom = parse(['--scripts-kv', '--scripts-kv-prefix', 'team/a/scripts/']);
  assert.equal(custom.kind === 'config' && custom.scriptsKvPrefix, 'team/a/scripts/');
  const env = parseBalancerArgs([], { BALANCER_SCRIPTS_KV: 'true' }, { cores: 1 });
  assert.equal(env.kind === 'config' && env.scriptsKvPrefix, 'balancer/scripts/');
  for (const [argv, re] of [
    [['--scripts-kv', '--no-consul'], /needs Consul/],
    [['--scripts-kv-prefix', 'a/'], /needs --scripts-kv/],
    [['--scripts-kv', '--scripts-kv-prefix', '/a/'], /ending in \//],
    [['--scripts-kv', '--scripts-kv-prefix', 'a'], /ending in \//],
  ] as [string[], RegExp][]) {
    const r = parse(argv);
    assert.equal(r.kind, 'error', argv.join(' '));
    assert.match((r as { message: string }).message, re);
  }
});
