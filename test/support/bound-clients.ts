// Clients bound to a chosen loopback source address (127.0.0.2, 127.0.0.3, ...), for tests of
// access rules and rate limits by client address, and a counter of what they were let through.
import net from 'node:net';

/** One HTTP/1.1 request on a new connection from `from`: the status, 0 when the connection was closed without one. */
export function httpFrom(from: string, port: number, host: string, extra = ''): Promise<{ status: number; head: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let text = '';
    s.setEncoding('latin1');
    s.setTimeout(5000, () => { s.destroy(); reject(new Error('no answer in 5 s')); });
    s.on('data', (d: string) => { text += d; });
    s.on('error', () => undefined);
    s.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, head: text.split('\r\n\r\n')[0] });
    });
    s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n${extra}\r\n`);
  });
}

/** A TCP connection from `from` to an echo service: 'ping' when it echoed "ping", else 'closed'. */
export function tcpFrom(from: string, port: number, timeoutMs = 5000): Promise<'ping' | 'closed'> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let text = '';
    s.setEncoding('utf8');
    s.setTimeout(timeoutMs, () => s.destroy());
    s.on('data', (d: string) => {
      text += d;
      if (text === 'ping') { s.destroy(); resolve('ping'); }
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(text === 'ping' ? 'ping' : 'closed'));
    s.write('ping');
  });
}

export interface AcceptedRate {
  /** accepted per second over the measured span */
  readonly perSecond: number;
  readonly accepted: number;
  readonly refused: number;
  /** answers that were neither */
  readonly other: number;
}

/**
 * Runs `clients` loops of `attempt` (true = accepted, false = refused, undefined = neither) for
 * `warmupMs` (the burst is spent) and then `measureMs`, counting only the measured span. Load
 * generation for a span, not synchronization: the loops stop when it ends.
 */
export async function measureAccepted(clients: number, attempt: () => Promise<boolean | undefined>, warmupMs: number, measureMs: number): Promise<AcceptedRate> {
  let accepted = 0;
  let refused = 0;
  let other = 0;
  let measuring = false;
  let on = true;
  const loop = async () => {
    while (on) {
      const r = await attempt();
      if (!measuring || !on) continue;
      if (r === true) accepted++;
      else if (r === false) refused++;
      else other++;
    }
  };
  const loops = Array.from({ length: clients }, () => loop());
  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, measureMs));
  on = false;
  const seconds = (Date.now() - t0) / 1000;
  const counted = { accepted, refused, other };
  await Promise.all(loops);
  return { perSecond: counted.accepted / seconds, ...counted };
}
