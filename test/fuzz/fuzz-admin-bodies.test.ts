// Fuzz: random admin bodies (dyups text and JSON, both content types) into the admin app via inject().
// Invariants: never a 5xx; every refusal is 400/413 JSON {error, message}; a refused body changes
// nothing; an accepted one yields only servers whose host and port pass validation; the table keeps
// its other upstreams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { checkHostPort } from '../../common/host-port.js';
import { buildAdminApp } from '../../balancer/src/admin/app.js';
import { TableHolder } from '../../balancer/src/routing/table-holder.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import { anyValue, chance, fuzz, GOOD_HOSTS, hostileString, int, pick, type Rng } from '../support/fuzz.js';

const logger = pino({ level: 'silent' });

function dyupsBody(rng: Rng): string {
  const entries: string[] = [];
  for (let i = int(rng, 0, 4); i > 0; i--) {
    const host = chance(rng, 0.5) ? pick(rng, GOOD_HOSTS) : hostileString(rng, 3);
    const hostText = host.includes(':') && chance(rng, 0.8) ? `[${host}]` : host;
    const port = chance(rng, 0.7) ? String(int(rng, 1, 65535)) : hostileString(rng, 2);
    const params = Array.from({ length: int(rng, 0, 3) }, () => pick(rng, ['weight=2', 'weight=0', 'backup', 'down', 'max_fails=3', 'fail_timeout=10s', 'fail_timeout=x', hostileString(rng, 2)]));
    entries.push(`${chance(rng, 0.9) ? 'server' : hostileString(rng, 1)} ${hostText}${chance(rng, 0.85) ? `:${port}` : ''} ${params.join(' ')}`);
  }
  return entries.join(pick(rng, [';', '; ', ';\n', ' ; '])) + (chance(rng, 0.7) ? ';' : '');
}

function jsonBody(rng: Rng): unknown {
  if (chance(rng, 0.1)) return anyValue(rng);
  const servers = Array.from({ length: int(rng, 0, 4) }, () => {
    if (chance(rng, 0.1)) return anyValue(rng);
    const s: Record<string, unknown> = {
      host: chance(rng, 0.5) ? pick(rng, GOOD_HOSTS) : anyValue(rng),
      port: chance(rng, 0.6) ? int(rng, 1, 65535) : anyValue(rng),
    };
    if (chance(rng, 0.3)) s.weight = anyValue(rng);
    if (chance(rng, 0.2)) s[pick(rng, ['max_fails', 'fail_timeout', 'down', 'backup', 'colour'])] = anyValue(rng);
    return s;
  });
  const body: Record<string, unknown> = { servers };
  if (chance(rng, 0.2)) body.lb = pick(rng, ['wrr', 'chash', 'fastest', hostileString(rng, 1)]);
  if (chance(rng, 0.2)) body.hash = pick(rng, ['ip', 'header:X-User', 'header:a b', hostileString(rng, 2)]);
  return body;
}

test('fuzz: admin bodies in both formats never cause a 5xx and never admit a bad address', async () => {
  const holder = new TableHolder({
    defaults: DEFAULT_TABLE_DEFAULTS, logger,
    initialSnapshot: { services: { web: [{ serviceId: 'web-1', service: 'web', node: 'n', address: '127.0.0.1', port: 9001, tags: [], meta: {}, status: 'passing' }] } },
  });
  const app = buildAdminApp({ holder, defaults: DEFAULT_TABLE_DEFAULTS, logger });
  try {
    const r = await fuzz('admin-bodies', 1500, async (rng) => {
      const name = chance(rng, 0.9) ? pick(rng, ['api', 'x', 'constructor', 'toString', 'a.b']) : encodeURIComponent(Buffer.from(hostileString(rng, 2)).toString()) // lone surrogates -> U+FFFD: a URL cannot carry them;
      const json = chance(rng, 0.5);
      const payload = json ? (chance(rng, 0.05) ? hostileString(rng) : JSON.stringify(jsonBody(rng)) ?? '') : dyupsBody(rng);
      const contentType = json ? 'application/json' : pick(rng, ['text/plain', 'application/x-www-form-urlencoded']);
      const before = holder.current().version;
      const method = chance(rng, 0.85) ? 'POST' : 'DELETE';
      const res = await app.inject({ method, url: `/upstream/${name}`, headers: { 'content-type': contentType }, payload });
      const what = `${method} /upstream/${name} ${contentType} ${JSON.stringify(payload).slice(0, 300)} -> ${res.statusCode} ${res.body.slice(0, 300)}`;
      assert.ok(res.statusCode < 500, what);
      if (res.statusCode >= 400) {
        const b = res.json() as { error?: unknown; message?: unknown };
        assert.equal(typeof b.error, 'string', what);
        assert.equal(typeof b.message, 'string', what);
        if (method === 'POST') assert.equal(holder.current().version, before, `a refused body changed the table: ${what}`);
      }
      for (const u of Object.values(holder.current().upstreams)) {
        for (const s of u.servers) assert.ok(checkHostPort(s.host, s.port).ok, `server ${s.host}:${s.port} admitted (${what})`);
      }
      assert.ok(Object.hasOwn(holder.current().upstreams, 'web'), `the Consul upstream is kept (${what})`);
    });
    assert.ok(r.cases > 50, `only ${r.cases} cases ran`);
  } finally {
    await app.close();
  }
});
