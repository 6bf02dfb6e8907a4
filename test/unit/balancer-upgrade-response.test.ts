// Pure parts of the Upgrade pass-through: allowed protocols, the upstream answer head, body framing
// of a non-101 answer and the end of a chunked body fed in pieces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkedEnd, parseResponseHead, responseFraming, upgradeAllowed, type ResponseHead } from '../../balancer/src/proxy/upgrade-response.js';

test('upgradeAllowed scenarios', () => {
  const cases: [value: string | undefined, allowed: string[], ok: boolean][] = [
    ['websocket', ['websocket'], true],
    ['WebSocket', ['websocket'], true],
    [' websocket ', ['websocket'], true],
    ['websocket/13', ['websocket'], true],
    ['h2c', ['websocket'], false],
    ['websocket, h2c', ['websocket'], false],
    ['websocket, h2c', ['websocket', 'h2c'], true],
    ['', ['websocket'], false],
    [undefined, ['websocket'], false],
    [',', ['websocket'], false],
  ];
  for (const [value, allowed, ok] of cases) assert.equal(upgradeAllowed(value, allowed), ok, `${value} in ${allowed}`);
});

test('parseResponseHead: complete, incomplete, malformed', () => {
  const ok = parseResponseHead(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nFRAME'));
  assert.ok(ok !== undefined && !(ok instanceof Error));
  assert.equal(ok.status, 101);
  assert.equal(ok.statusLine, 'HTTP/1.1 101 Switching Protocols');
  assert.deepEqual(ok.headers, ['Upgrade', 'websocket', 'Connection', 'Upgrade']);
  assert.equal(ok.length, Buffer.byteLength('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'));
  const noReason = parseResponseHead(Buffer.from('HTTP/1.0 200\r\n\r\n'));
  assert.ok(noReason !== undefined && !(noReason instanceof Error) && noReason.status === 200);
  assert.equal(parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\nA: b\r\n')), undefined);
  for (const bad of ['HTTP/2 200 OK\r\n\r\n', 'HTTP/1.1 20 OK\r\n\r\n', 'HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n', 'HTTP/1.1 200 OK\r\n folded\r\n\r\n',
    'HTTP/1.1 200 OK\r\nNoColon\r\n\r\n', 'HTTP/1.1 200 OK\r\nA : b\r\n\r\n', `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(17_000)}\r\n\r\n`]) {
    assert.ok(parseResponseHead(Buffer.from(bad)) instanceof Error, JSON.stringify(bad.slice(0, 40)));
  }
  assert.ok(parseResponseHead(Buffer.alloc(17_000, 0x61)) instanceof Error, 'no end of head within the limit');
});

test('responseFraming scenarios (RFC 9112 section 6.3)', () => {
  const head = (status: number, headers: string[]): ResponseHead => ({ status, statusLine: `HTTP/1.1 ${status} X`, headers, length: 0 });
  const cases: [method: string, h: ResponseHead, kind: string, length?: number][] = [
    ['GET', head(200, ['Content-Length', '12']), 'length', 12],
    ['GET', head(200, ['Content-Length', '0']), 'length', 0],
    ['HEAD', head(200, ['Content-Length', '12']), 'none'],
    ['GET', head(204, []), 'none'],
    ['GET', head(304, ['Content-Length', '5']), 'none'],
    ['GET', head(200, ['Transfer-Encoding', 'chunked']), 'chunked'],
    ['GET', head(200, ['Transfer-Encoding', 'gzip, chunked']), 'chunked'],
    ['GET', head(200, ['Transfer-Encoding', 'gzip']), 'close'],
    ['GET', head(200, []), 'close'],
    ['GET', head(200, ['Content-Length', '5', 'Content-Length', '5']), 'length', 5],
    ['GET', head(200, ['Content-Length', '5', 'Content-Length', '6']), 'invalid'],
    ['GET', head(200, ['Content-Length', '5', 'Transfer-Encoding', 'chunked']), 'invalid'],
    ['GET', head(200, ['Content-Length', '+5']), 'invalid'],
    ['GET', head(200, ['Content-Length', '5, 5']), 'invalid'],
  ];
  for (const [method, h, kind, length] of cases) {
    const f = responseFraming(method, h);
    assert.equal(f.kind, kind, `${method} ${JSON.stringify(h.headers)}`);
    if (length !== undefined) assert.equal(f.kind === 'length' ? f.length : -1, length);
  }
});

test('ChunkedEnd finds the end of a chunked body at any split, and refuses bad framing', () => {
  const body = '5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nTrailer: x\r\n\r\n';
  const after = 'HTTP/1.1 200 OK\r\n';
  const all = Buffer.from(body + after);
  for (let split = 0; split <= all.length; split++) {
    const scanner = new ChunkedEnd();
    const first = scanner.feed(all.subarray(0, split));
    if (first >= 0) { assert.equal(first, body.length, `split ${split}`); continue; }
    const second = scanner.feed(all.subarray(split));
    assert.equal(split + second, body.length, `split ${split}`);
  }
  assert.equal(new ChunkedEnd().feed(Buffer.from('0\r\n\r\n')), 5);
  assert.equal(new ChunkedEnd().feed(Buffer.from('a\r\n0123456789')), -1);
  for (const bad of ['x\r\n', '5\nhello', '5\r\nhelloXX', '1000000000000\r\n', '0\r\nA: b\n\r\n']) {
    assert.throws(() => new ChunkedEnd().feed(Buffer.from(bad)), Error, bad);
  }
});
