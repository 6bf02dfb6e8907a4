// Differential test of the request parser against llhttp in strict mode (node:http's parser): the
// classic smuggling and framing corpus plus seeded mutations of valid requests. Ours must never
// accept what llhttp refuses, and where both accept, method, target, header list and body
// boundaries are identical. HTTP1_FUZZ_N=<count> HTTP1_FUZZ_SEED=<n> runs a longer variant.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequests } from '../support/http1-collect.js';
import { llhttpParseRequests } from '../support/llhttp-reference.js';
import { SMUGGLING_CORPUS, VALID_REQUESTS } from '../support/http1-corpus.js';
import { mulberry32 as prng } from '../support/fuzz.js';

const MUTATIONS = Number(process.env.HTTP1_FUZZ_N ?? 12_000);
const SEED = Number(process.env.HTTP1_FUZZ_SEED ?? 20261201);

function show(input: Buffer): string {
  return `${JSON.stringify(input.toString('latin1'))} (hex ${input.toString('hex')})`;
}

/** The differences between ours and llhttp for one input; empty when they agree as required. */
export function compare(input: Buffer): string[] {
  const ours = parseRequests(input);
  const ref = llhttpParseRequests(input);
  const problems: string[] = [];
  ours.requests.forEach((r, i) => {
    const m = ref.messages[i];
    if (m === undefined) {
      problems.push(`we accepted request #${i} (${r.head.method} ${r.head.target}) that llhttp ${ref.error === undefined ? 'did not complete' : `refused (${ref.error})`}`);
      return;
    }
    if (m.method !== r.head.method) problems.push(`#${i} method ${r.head.method} vs llhttp ${m.method}`);
    if (m.target !== r.head.target) problems.push(`#${i} target ${r.head.target} vs llhttp ${m.target}`);
    if (JSON.stringify(m.rawHeaders) !== JSON.stringify(r.head.rawHeaders)) problems.push(`#${i} headers ${JSON.stringify(r.head.rawHeaders)} vs llhttp ${JSON.stringify(m.rawHeaders)}`);
    if (m.body !== r.body) problems.push(`#${i} body ${JSON.stringify(r.body)} vs llhttp ${JSON.stringify(m.body)}`);
    // closing where llhttp would keep the connection is stricter, never a smuggling risk
    if (r.head.keepAlive && !m.keepAlive) problems.push(`#${i} keep-alive ${r.head.keepAlive} vs llhttp ${m.keepAlive}`);
  });
  return problems;
}

/** mulberry32: a small seeded PRNG, so a failure is reproducible from its seed. */

const INTERESTING_BYTES = [0x0d, 0x0a, 0x00, 0x20, 0x09, 0x3a, 0x2c, 0x3b, 0x22, 0x30, 0x39, 0x61, 0x66, 0x2d, 0x2b, 0x78, 0x7f, 0x80, 0xff, 0x0b, 0x0c, 0x2f, 0x3f, 0x23, 0x25];
const INTERESTING_LINES = [
  'Transfer-Encoding: chunked', 'Transfer-Encoding:  chunked', 'Transfer-Encoding: chunked, identity', 'Transfer-Encoding: xchunked',
  'Transfer-Encoding : chunked', 'Content-Length: 0', 'Content-Length: 5', 'Content-Length: 05', 'Content-Length: +5', 'Content-Length: 5, 5',
  'Content-Length: 18446744073709551616', 'Host: b', 'Connection: close', 'Connection: keep-alive', 'Connection: upgrade', 'Upgrade: websocket',
  'Expect: 100-continue', ' folded', 'X:\tv', 'X: a\rb', 'TRANSFER-ENCODING: CHUNKED', 'content-length:3',
];

function mutate(input: Buffer, rnd: () => number): Buffer {
  let out = Buffer.from(input);
  const n = 1 + Math.floor(rnd() * 3);
  for (let k = 0; k < n; k++) {
    const pos = Math.floor(rnd() * (out.length + 1));
    const op = Math.floor(rnd() * 7);
    const byte = INTERESTING_BYTES[Math.floor(rnd() * INTERESTING_BYTES.length)];
    switch (op) {
      case 0: out = Buffer.concat([out.subarray(0, pos), Buffer.from([byte]), out.subarray(pos)]); break;
      case 1: out = Buffer.concat([out.subarray(0, pos), out.subarray(pos + 1)]); break;
      case 2: if (pos < out.length) out[pos] = byte; break;
      case 3: if (pos < out.length) out[pos] = Math.floor(rnd() * 256); break;
      case 4: {
        // insert a whole header line after the line that contains pos
        const eol = out.indexOf('\r\n', pos);
        if (eol < 0) break;
        const line = INTERESTING_LINES[Math.floor(rnd() * INTERESTING_LINES.length)];
        out = Buffer.concat([out.subarray(0, eol + 2), Buffer.from(`${line}\r\n`, 'latin1'), out.subarray(eol + 2)]);
        break;
      }
      case 5: out = out.subarray(0, pos); break;
      default: {
        // duplicate a line
        const start = out.lastIndexOf('\r\n', pos);
        const end = out.indexOf('\r\n', pos);
        if (start < 0 || end < 0 || end <= start) break;
        const line = out.subarray(start, end);
        out = Buffer.concat([out.subarray(0, end), line, out.subarray(end)]);
      }
    }
  }
  return out;
}

describe('http1 request parser vs llhttp (strict)', () => {
  it('the smuggling corpus: never accepts what llhttp refuses, identical where both accept', () => {
    const failures: string[] = [];
    for (const [name, text] of SMUGGLING_CORPUS) {
      const input = Buffer.from(text, 'latin1');
      const problems = compare(input);
      if (problems.length > 0) failures.push(`${name}: ${problems.join('; ')}\n  bytes ${show(input)}`);
    }
    assert.deepEqual(failures, []);
  });

  it('every valid base request is accepted by both, identically', () => {
    for (const text of VALID_REQUESTS) {
      const input = Buffer.from(text, 'latin1');
      assert.deepEqual(compare(input), [], show(input));
      assert.ok(parseRequests(input).requests.length > 0, `we refuse a valid request: ${show(input)}`);
    }
  });

  it(`${MUTATIONS} seeded mutations of valid requests (seed ${SEED})`, () => {
    const failures: string[] = [];
    let bothAccepted = 0;
    for (let i = 0; i < MUTATIONS && failures.length < 10; i++) {
      const seed = SEED + i;
      const rnd = prng(seed);
      const base = Buffer.from(VALID_REQUESTS[Math.floor(rnd() * VALID_REQUESTS.length)], 'latin1');
      const input = mutate(base, rnd);
      const problems = compare(input);
      if (problems.length > 0) failures.push(`seed ${seed}: ${problems.join('; ')}\n  bytes ${show(input)}`);
      else if (parseRequests(input).requests.length > 0) bothAccepted++;
    }
    assert.deepEqual(failures, [], `rerun one with HTTP1_FUZZ_SEED=<seed> HTTP1_FUZZ_N=1`);
    // the mutations must exercise acceptance too, not only refusals
    assert.ok(bothAccepted > MUTATIONS / 10, `only ${bothAccepted} mutated inputs accepted by both`);
  });
});
