// The workers' ACME HTTP-01 lookups answered by the primary: request/answer by seq, a bounded wait
// for the primary, one Consul lookup per token in flight however many validators ask at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { challengeRelayServer, ChallengeRelayClient, type ChallengeAnswer, type ChallengeRequest } from '../../balancer/src/tls/acme-challenge-relay.js';

const TOKEN = 'abcdefghijklmnop_-0123';

function wired(lookup: (token: string) => Promise<string | undefined>, timeoutMs = 1000): { client: ChallengeRelayClient; lookups: () => number } {
  let lookups = 0;
  const serve = challengeRelayServer((t) => { lookups++; return lookup(t); });
  // IPC is asynchronous: the answer arrives on a later turn, as over the channel
  const client: ChallengeRelayClient = new ChallengeRelayClient({ timeoutMs }, (req: ChallengeRequest) => {
    setImmediate(() => serve(req, (a: ChallengeAnswer) => setImmediate(() => client.onAnswer(a))));
  });
  return { client, lookups: () => lookups };
}

test('found, not found and a failed lookup come back to the asking worker', async () => {
  const values: Record<string, string> = { [TOKEN]: `${TOKEN}.thumb` };
  const { client } = wired(async (t) => {
    if (t === 'x'.repeat(20)) throw new Error('consul answered 500');
    return values[t];
  });
  assert.equal(await client.lookup(TOKEN), `${TOKEN}.thumb`);
  assert.equal(await client.lookup('y'.repeat(20)), undefined);
  await assert.rejects(client.lookup('x'.repeat(20)), /consul answered 500/);
});

test('concurrent lookups of one token cost one Consul read; each asker gets its answer', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const { client, lookups } = wired(async () => { await gate; return 'ka'; });
  const asks = Array.from({ length: 5 }, () => client.lookup(TOKEN));
  await new Promise((r) => setTimeout(r, 20));
  release();
  assert.deepEqual(await Promise.all(asks), ['ka', 'ka', 'ka', 'ka', 'ka']);
  assert.equal(lookups(), 1);
  assert.equal(await client.lookup(TOKEN), 'ka');
  assert.equal(lookups(), 2, 'a later ask reads again (nothing cached)');
});

test('no answer from the primary: the lookup fails after its timeout, a late answer is dropped', async () => {
  const sent: ChallengeRequest[] = [];
  const client = new ChallengeRelayClient({ timeoutMs: 50 }, (req) => void sent.push(req));
  const t0 = Date.now();
  await assert.rejects(client.lookup(TOKEN), /no answer from the primary within 50 ms/);
  assert.ok(Date.now() - t0 >= 45);
  client.onAnswer({ type: 'acme-challenge-answer', seq: sent[0].seq, found: true, keyAuthorization: 'late' });
  const pending = client.lookup(TOKEN);
  client.close();
  await assert.rejects(pending, /worker closing/);
});
