// The Docker event stream under faults: a multi-byte character split across chunks, and a stream that
// stays open but silent while the engine has events (hung): the watcher notices through its since/until
// probe and reconnects. Fake engines in memory; every wait bounded.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { toContainerEvent, watchContainerEvents, type ContainerEvent } from '../../registrator/src/docker/events.js';

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))),
  ]);
}

test('an event whose multi-byte character is split over two chunks arrives intact', async () => {
  const stop = new AbortController();
  const seen: ContainerEvent[] = [];
  const line = Buffer.from('{"Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"wéb-☃"}}}\n', 'utf8');
  const cut = line.indexOf(Buffer.from('é')) + 1; // inside the two bytes of "é"
  const cut2 = line.indexOf(Buffer.from('☃')) + 2; // inside the three bytes of "☃"
  const docker = {
    getEvents: async () => {
      const stream = new PassThrough();
      setImmediate(() => {
        stream.write(line.subarray(0, cut));
        stream.write(line.subarray(cut, cut2));
        stream.write(line.subarray(cut2));
      });
      return stream;
    },
  };
  const done = watchContainerEvents({
    docker: docker as never, signal: stop.signal, logger: pino({ level: 'silent' }), backoff: { baseMs: 1, maxMs: 5 },
    onConnected: () => undefined,
    onEvent: (e) => {
      seen.push(e);
      stop.abort();
    },
  });
  await bounded(done, 3000, 'watcher');
  assert.equal(seen.length, 1);
  assert.equal(seen[0].name, 'wéb-☃');
});

test('kill events carry their signal; odd field types are ignored, not thrown', () => {
  assert.deepEqual(toContainerEvent({ Type: 'container', Action: 'kill', timeNano: 17, Actor: { ID: 'c', Attributes: { signal: '15' } } }),
    { containerId: 'c', action: 'kill', signal: 15, timeNano: '17' });
  assert.equal(toContainerEvent({ Type: 'container', Action: 3, Actor: { ID: 'c' } }), undefined);
  assert.equal(toContainerEvent({ Type: 'container', Action: 'die', Actor: { ID: ['c'] } }), undefined);
});

/** An engine whose first stream hangs (open, silent) while its since/until answers list an event. */
function hungEngine(probeEvents: object[]) {
  const calls: Array<{ since?: string; until?: string }> = [];
  let streams = 0;
  const docker = {
    getEvents: async (opts: { since?: string; until?: string }) => {
      calls.push({ since: opts.since, until: opts.until });
      const stream = new PassThrough();
      if (opts.until !== undefined) {
        setImmediate(() => {
          for (const e of probeEvents) stream.write(`${JSON.stringify(e)}\n`);
          stream.end();
        });
      } else {
        streams += 1;
      }
      return stream; // a subscription: never writes, never ends
    },
  };
  return { docker, calls, streams: () => streams };
}

test('a hung stream (open, silent, the engine has events) is detected by the probe and reconnected', async () => {
  const stop = new AbortController();
  const connects: number[] = [];
  const engine = hungEngine([{ Type: 'container', Action: 'die', timeNano: 1, Actor: { ID: 'c1' } }]);
  const done = watchContainerEvents({
    docker: engine.docker as never, signal: stop.signal, logger: pino({ level: 'silent' }),
    backoff: { baseMs: 1, maxMs: 5 }, probeIntervalMs: 30, probeLagMs: 0,
    onConnected: (n) => {
      connects.push(n);
      if (n === 2) stop.abort();
    },
    onEvent: () => undefined,
  });
  await bounded(done, 5000, 'reconnect after the hung stream');
  assert.deepEqual(connects, [1, 2]);
  const probe = engine.calls.find((c) => c.until !== undefined);
  assert.ok(probe && Number(probe.since) > 0 && Number(probe.until) >= Number(probe.since), JSON.stringify(engine.calls));
});

test('a quiet engine and a healthy stream: probes agree, no reconnect', async () => {
  const stop = new AbortController();
  const connects: number[] = [];
  const engine = hungEngine([]);
  const done = watchContainerEvents({
    docker: engine.docker as never, signal: stop.signal, logger: pino({ level: 'silent' }),
    backoff: { baseMs: 1, maxMs: 5 }, probeIntervalMs: 20, probeLagMs: 0,
    onConnected: (n) => connects.push(n),
    onEvent: () => undefined,
  });
  const deadline = Date.now() + 3000;
  while (engine.calls.filter((c) => c.until !== undefined).length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  stop.abort();
  await bounded(done, 3000, 'watcher stop');
  assert.ok(engine.calls.filter((c) => c.until !== undefined).length >= 5, 'probes ran');
  assert.deepEqual(connects, [1]);
});

test('a probe the engine does not answer means the connection cannot be trusted: reconnect', async () => {
  const stop = new AbortController();
  const connects: number[] = [];
  let probes = 0;
  const docker = {
    getEvents: async (opts: { until?: string }) => {
      if (opts.until !== undefined) {
        probes += 1;
        throw Object.assign(new Error('connect EACCES'), { code: 'EACCES' });
      }
      return new PassThrough();
    },
  };
  const done = watchContainerEvents({
    docker: docker as never, signal: stop.signal, logger: pino({ level: 'silent' }),
    backoff: { baseMs: 1, maxMs: 5 }, probeIntervalMs: 20, probeLagMs: 0,
    onConnected: (n) => {
      connects.push(n);
      if (n === 2) stop.abort();
    },
    onEvent: () => undefined,
  });
  await bounded(done, 3000, 'reconnect after a failed probe');
  assert.deepEqual(connects, [1, 2]);
  assert.ok(probes >= 1);
});
