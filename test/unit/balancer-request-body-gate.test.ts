// The request body gate: no dispatch before the body (or GATE_BYTES of it) is in hand, replay of a
// body that ended in the gate, streaming with backpressure beyond it, idle and total limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GatedBody, type BodyTimeoutKind } from '../../balancer/src/proxy/request-body-gate.js';
import type { BodySink, BodySource } from '../../balancer/src/proxy/transport.js';
import { DeadlineSweep } from '../../balancer/src/proxy/deadline-sweep.js';

/** the worker's body clock, on real time (its interval is unref'd) */
const clock = new DeadlineSweep(10);

class FakeSource implements BodySource {
  sink: BodySink | undefined;
  paused = false;
  consumed = false;
  failed = false;
  setSink(sink: BodySink): void { this.sink = sink; }
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
  send(text: string): boolean { return this.sink!.onBodyData(Buffer.from(text)); }
}

function events() {
  const log: string[] = [];
  return {
    log,
    onBodyReady: () => log.push('ready'),
    onBodyTimeout: (k: BodyTimeoutKind) => log.push(`timeout:${k}`),
    onBodyFailed: (e: Error) => log.push(`failed:${e.message}`),
  };
}

function collector(acceptUntil = Infinity) {
  const got: string[] = [];
  let ended = false;
  let error: string | undefined;
  const sink: BodySink = {
    onBodyData: (c) => { got.push(c.toString()); return got.length < acceptUntil; },
    onBodyEnd: () => { ended = true; },
    onBodyError: (e) => { error = (e as Error & { code?: string }).code; },
  };
  return { sink, got, ended: () => ended, error: () => error };
}

test('a small body is ready only at its end, goes whole, and can be replayed to a second try', () => {
  const src = new FakeSource();
  const ev = events();
  const gate = new GatedBody(src, ev, { clock, idleMs: 0, totalMs: 0, gateBytes: 10 });
  src.send('ab');
  src.send('cd');
  assert.deepEqual(ev.log, []);
  src.sink!.onBodyEnd();
  assert.deepEqual(ev.log, ['ready']);
  assert.equal(gate.wholeBody()?.toString(), 'abcd');
  assert.equal(gate.consumed, false, 'a body that ended in the gate stays replayable');
  const first = collector();
  gate.setSink(first.sink);
  assert.deepEqual(first.got, ['abcd']);
  assert.equal(first.ended(), true);
  const second = collector();
  gate.setSink(second.sink);
  assert.deepEqual(second.got, ['abcd']);
  assert.equal(second.ended(), true);
  assert.equal(gate.failed, false);
});

test('a large body is ready at GATE_BYTES, then streams with backpressure and is not replayable', () => {
  const src = new FakeSource();
  const ev = events();
  const gate = new GatedBody(src, ev, { clock, idleMs: 0, totalMs: 0, gateBytes: 4 });
  assert.equal(src.send('ab'), true);
  assert.equal(src.send('cd'), false, 'the gate is full: the client is paused');
  assert.equal(src.paused, true);
  assert.deepEqual(ev.log, ['ready']);
  assert.equal(gate.wholeBody(), undefined);
  const sink = collector(1);
  gate.setSink(sink.sink);
  assert.deepEqual(sink.got, ['ab'], 'the sink said stop after one chunk');
  gate.resume();
  assert.deepEqual(sink.got, ['ab', 'cd']);
  assert.equal(src.paused, true, 'the sink still says stop');
  gate.resume();
  assert.equal(src.paused, false, 'everything buffered went out: the client may send again');
  assert.equal(src.send('ef'), false, 'live data goes straight through; the sink says stop again');
  src.sink!.onBodyEnd();
  assert.deepEqual(sink.got, ['ab', 'cd', 'ef']);
  assert.equal(sink.ended(), false, 'the end waits until the sink resumes');
  gate.resume();
  assert.equal(sink.ended(), true);
  assert.equal(gate.consumed, true);
});

test('a sink that says stop while the client is flowing holds the client: the gate buffers one chunk, not the body', () => {
  // the gRPC case (readyAfterMs 0): the transport attaches before the gate filled, so the client is
  // flowing when the sink's first write says stop; every later chunk must be held, not queued
  const src = new FakeSource();
  const ev = events();
  const gate = new GatedBody(src, ev, { clock, idleMs: 0, totalMs: 0, gateBytes: 1_000 });
  assert.equal(src.send('ab'), true, 'below the gate: the client keeps sending');
  assert.equal(src.paused, false);
  const sink = collector(1);
  gate.setSink(sink.sink);
  assert.deepEqual(sink.got, ['ab'], 'the buffered chunk went out and the sink said stop');
  assert.equal(src.send('cd'), false, 'a paused sink: the client is told to stop');
  assert.equal(src.paused, true, 'and the gate paused it');
  for (let i = 0; i < 3; i++) src.send('xx'); // what a source may still deliver before it stops
  assert.equal(src.paused, true);
  gate.resume();
  assert.deepEqual(sink.got, ['ab', 'cd'], 'held chunks go out in order when the sink resumes');
  gate.resume();
  gate.resume();
  gate.resume();
  assert.deepEqual(sink.got, ['ab', 'cd', 'xx', 'xx', 'xx']);
  assert.equal(src.paused, true, 'the sink still says stop');
  gate.resume();
  assert.equal(src.paused, false, 'all handed over: the client may send again');
  src.sink!.onBodyEnd();
  gate.resume();
  assert.equal(sink.ended(), true);
});

test('idle and total limits fire once, fail the body, and reach an attached sink', async () => {
  const cases: { idleMs: number; totalMs: number; kind: BodyTimeoutKind }[] = [
    { idleMs: 30, totalMs: 0, kind: 'client_body_timeout' },
    { idleMs: 0, totalMs: 30, kind: 'request_timeout' },
  ];
  for (const c of cases) {
    const src = new FakeSource();
    const ev = events();
    const gate = new GatedBody(src, ev, { clock, idleMs: c.idleMs, totalMs: c.totalMs, gateBytes: 2 });
    src.send('abc'); // beyond the gate: streaming
    const sink = collector();
    gate.setSink(sink.sink);
    const deadline = Date.now() + 2_000;
    while (ev.log.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(ev.log, ['ready', `timeout:${c.kind}`]);
    assert.equal(gate.failed, true);
    assert.equal(sink.error(), c.kind === 'client_body_timeout' ? 'ERR_CLIENT_BODY_TIMEOUT' : 'ERR_REQUEST_TIMEOUT');
    gate.dispose();
  }
});

test('a body that ends in time disarms its timers; a client that fails in the gate is reported', async () => {
  const src = new FakeSource();
  const ev = events();
  const gate = new GatedBody(src, ev, { clock, idleMs: 20, totalMs: 20, gateBytes: 100 });
  src.send('x');
  src.sink!.onBodyEnd();
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(ev.log, ['ready']);
  assert.equal(gate.failed, false);

  const src2 = new FakeSource();
  const ev2 = events();
  const gate2 = new GatedBody(src2, ev2, { clock, idleMs: 0, totalMs: 0 });
  src2.sink!.onBodyError(new Error('gone'));
  assert.deepEqual(ev2.log, ['failed:gone']);
  assert.equal(gate2.failed, true);
});

test('the limits are one deadline on the clock: moved by data, the idle one stopped while the transport holds the body, gone at the end', () => {
  let now = 1_000;
  const fake = new DeadlineSweep(1_000_000, () => now);
  const src = new FakeSource();
  const ev = events();
  const gate = new GatedBody(src, ev, { clock: fake, idleMs: 100, totalMs: 1_000, gateBytes: 4 });
  assert.equal(fake.size, 1);
  assert.equal(gate.deadline, 1_100, 'the idle limit comes first');
  now = 1_050;
  src.send('ab');
  assert.equal(gate.deadline, 1_150, 'a chunk moves the idle deadline');
  now = 1_100;
  fake.sweep();
  assert.deepEqual(ev.log, [], 'nothing passed: nothing fires');
  src.send('cdef'); // the gate is full: the client is held until a transport reads
  assert.deepEqual(ev.log, ['ready']);
  assert.equal(src.paused, true);
  assert.equal(gate.deadline, 2_000, 'while held, only the total limit counts');
  now = 1_900;
  fake.sweep();
  assert.deepEqual(ev.log, ['ready'], 'a held client is not idle');
  const sink = collector();
  gate.setSink(sink.sink);
  assert.equal(src.paused, false);
  assert.equal(gate.deadline, 2_000, 'reading again: the idle limit (2_000) and the total (2_000)');
  src.sink!.onBodyEnd();
  assert.equal(gate.deadline, 0);
  assert.equal(fake.size, 0, 'an ended body leaves the clock');
  now = 5_000;
  fake.sweep();
  assert.deepEqual(ev.log, ['ready']);
  assert.equal(sink.ended(), true);

  // the same clock expires the one that passes
  const src2 = new FakeSource();
  const ev2 = events();
  const late = new GatedBody(src2, ev2, { clock: fake, idleMs: 100, totalMs: 0, gateBytes: 100 });
  src2.send('x');
  now = 5_099;
  fake.sweep();
  assert.deepEqual(ev2.log, []);
  now = 5_100;
  fake.sweep();
  assert.deepEqual(ev2.log, ['timeout:client_body_timeout']);
  assert.equal(late.failed, true);
  assert.equal(fake.size, 0);
  late.dispose();
  const idleOnly = new GatedBody(new FakeSource(), events(), { clock: fake, idleMs: 0, totalMs: 0 });
  assert.equal(fake.size, 0, 'a gate without limits is never on the clock');
  idleOnly.dispose();
});

test('a transport that takes the full gate at once (an idle pooled connection) leaves the client reading', () => {
  // onBodyReady dispatches synchronously: the transport sets its sink and resumes the source inside
  // the call that filled the gate; answering false after that paused the client for good (the client
  // side pauses on false), and nothing would resume it unless a socket 'drain' happened to come
  const src = new FakeSource();
  const sink = collector();
  let gate: GatedBody | undefined;
  const ev = { ...events(), onBodyReady: () => { gate!.setSink(sink.sink); gate!.resume(); } };
  gate = new GatedBody(src, ev, { clock, idleMs: 0, totalMs: 0, gateBytes: 4 });
  assert.equal(src.send('abcd'), true, 'the body flows on: the client must not be paused');
  assert.equal(src.paused, false);
  assert.equal(src.send('ef'), true);
  src.sink!.onBodyEnd();
  assert.deepEqual(sink.got, ['abcd', 'ef']);
  assert.equal(sink.ended(), true);

  // a transport that is not there yet: the full gate holds the client (false), as before
  const src2 = new FakeSource();
  const held = new GatedBody(src2, events(), { clock, idleMs: 0, totalMs: 0, gateBytes: 4 });
  assert.equal(src2.send('abcd'), false);
  assert.equal(src2.paused, true);
  held.dispose();
});
