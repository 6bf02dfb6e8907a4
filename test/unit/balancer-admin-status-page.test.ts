// GET /status paging: query parameters (400 with a reason), the page of names, the merge of the
// workers' summaries (worst state per server, as the servers view merges).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeSummaries, pageOfNames, parseStatusQuery, summaryOfStatus, type StatusPageQuery } from '../../balancer/src/admin/status-page.js';

test('parseStatusQuery: defaults, bounds per view, and a reason for every bad parameter', () => {
  const ok: [Record<string, string | string[]>, StatusPageQuery][] = [
    [{}, { view: 'servers', upstreams: undefined, offset: 0, limit: 100 }],
    [{ view: 'summary' }, { view: 'summary', upstreams: undefined, offset: 0, limit: 1000 }],
    [{ view: 'summary', limit: '10000', offset: '5' }, { view: 'summary', upstreams: undefined, offset: 5, limit: 10000 }],
    [{ upstream: 'web,api', limit: '1' }, { view: 'servers', upstreams: ['api', 'web'], offset: 0, limit: 1 }],
    [{ upstream: ['web', 'api', 'web'] }, { view: 'servers', upstreams: ['api', 'web'], offset: 0, limit: 100 }],
  ];
  for (const [raw, want] of ok) assert.deepEqual(parseStatusQuery(raw), { ok: true, query: want }, JSON.stringify(raw));
  const bad: [Record<string, string | string[]>, RegExp][] = [
    [{ limt: '5' }, /unknown query parameter "limt"/],
    [{ view: 'all' }, /view must be "servers" or "summary"/],
    [{ limit: '0' }, /limit must be between 1 and 1000 for view=servers, not 0/],
    [{ limit: '1001' }, /between 1 and 1000/],
    [{ view: 'summary', limit: '10001' }, /between 1 and 10000 for view=summary/],
    [{ limit: '-1' }, /limit must be a whole number, not "-1"/],
    [{ offset: '1.5' }, /offset must be a whole number/],
    [{ offset: ['1', '2'] }, /"offset" given more than once/],
    [{ upstream: 'web,,api' }, /no empty one/],
    [{ upstream: Array.from({ length: 1001 }, (_, i) => `s${i}`).join(',') }, /at most 1000 upstream names/],
  ];
  for (const [raw, reason] of bad) {
    const r = parseStatusQuery(raw);
    assert.equal(r.ok, false, JSON.stringify(raw).slice(0, 80));
    if (!r.ok) assert.match(r.error, reason);
  }
});

test('pageOfNames: sorted pages with the next offset; asked-for names the table lacks are listed', () => {
  const names = ['c', 'a', 'e', 'b', 'd'];
  const q = (o: Partial<StatusPageQuery>): StatusPageQuery => ({ view: 'servers', upstreams: undefined, offset: 0, limit: 2, ...o });
  const scenarios: [Partial<StatusPageQuery>, { names: string[]; total: number; next: number | undefined; notFound: string[] }][] = [
    [{}, { names: ['a', 'b'], total: 5, next: 2, notFound: [] }],
    [{ offset: 2 }, { names: ['c', 'd'], total: 5, next: 4, notFound: [] }],
    [{ offset: 4 }, { names: ['e'], total: 5, next: undefined, notFound: [] }],
    [{ offset: 9 }, { names: [], total: 5, next: undefined, notFound: [] }],
    [{ upstreams: ['b', 'x', 'z'] }, { names: ['b'], total: 1, next: undefined, notFound: ['x', 'z'] }],
    [{ upstreams: ['a', 'b', 'c'], offset: 1 }, { names: ['b', 'c'], total: 3, next: undefined, notFound: [] }],
  ];
  for (const [o, want] of scenarios) assert.deepEqual(pageOfNames(names, q(o)), want, JSON.stringify(o));
});

test('mergeSummaries: worst state per server over the workers, in flight and panic summed, totals over all', () => {
  const w1 = [
    { name: 'api', algorithm: 'roundrobin', servers: 3, inflight: 2, notOk: [['a:1', 'err'], ['a:2', 'ejected']] as const },
    { name: 'web', algorithm: 'p2c', servers: 2, inflight: 0, notOk: [], panic: { panicking: false, entered: 1, picks: 4 } },
  ];
  const w2 = [
    { name: 'api', algorithm: 'roundrobin', servers: 3, inflight: 1, notOk: [['a:1', 'ejected'], ['a:3', 'down']] as const },
    { name: 'web', algorithm: 'p2c', servers: 2, inflight: 5, notOk: [], panic: { panicking: true, entered: 2, picks: 1 } },
    { name: 'new', algorithm: 'roundrobin', servers: 1, inflight: 0, notOk: [] }, // one worker has a newer table
  ];
  const { rows, totals } = mergeSummaries([w1, w2], ['api', 'gone', 'web']);
  assert.deepEqual(rows, [
    { name: 'api', algorithm: 'roundrobin', servers: 3, ok: 0, err: 0, ejected: 2, down: 1, inflight: 3, notOk: [{ id: 'a:1', status: 'ejected' }, { id: 'a:2', status: 'ejected' }, { id: 'a:3', status: 'down' }] },
    { name: 'web', algorithm: 'p2c', servers: 2, ok: 2, err: 0, ejected: 0, down: 0, inflight: 5, notOk: [], panic: { panicking: true, entered: 3, picks: 5 } },
  ]);
  assert.deepEqual(totals, { upstreams: 3, servers: 6, ok: 3, err: 0, ejected: 2, down: 1, inflight: 8 });
  assert.deepEqual(mergeSummaries([], ['api']), { rows: [], totals: { upstreams: 0, servers: 0, ok: 0, err: 0, ejected: 0, down: 0, inflight: 0 } });
});

test('summaryOfStatus: a whole status as a summary (runtime doubles)', () => {
  assert.deepEqual(summaryOfStatus({ name: 'web', algorithm: 'roundrobin', servers: [{ id: 'x:1', status: 'ok', inflight: 2 }, { id: 'x:2', status: 'err', inflight: 1 }] }),
    { name: 'web', algorithm: 'roundrobin', servers: 2, inflight: 3, notOk: [['x:2', 'err']] });
});
