// How many handshakes a TLS target resumes for a client that uses each session ticket once, the newest
// (RFC 8446 C.4; wrk reconnects offering the session it has last, browsers use a ticket once): the
// handshake row's req/s depends on it. Sequential connections, each sends `Connection: close`.
import tls from 'node:tls';

export interface ResumptionCount {
  readonly resumed: number;
  readonly full: number;
}

function once(url: URL, servername: string, session: Buffer | undefined): Promise<{ reused: boolean; ticket: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    let reused = false;
    const socket = tls.connect({ host: url.hostname, port: Number(url.port), servername, rejectUnauthorized: false, session, ALPNProtocols: ['http/1.1'] }, () => {
      reused = socket.isSessionReused();
      socket.write('GET /small.txt HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n');
    });
    const timer = setTimeout(() => socket.destroy(new Error('no answer within 5 s')), 5_000);
    socket.on('session', (t: Buffer) => (ticket = t));
    socket.on('data', () => undefined);
    socket.once('error', (err) => { clearTimeout(timer); reject(err); });
    socket.once('close', () => { clearTimeout(timer); resolve({ reused, ticket }); });
  });
}

/** `connections` sequential TLS 1.3 connections to `baseUrl`, each offering the ticket the previous one got last. */
export async function countResumptions(baseUrl: string, servername: string, connections: number): Promise<ResumptionCount> {
  const url = new URL(baseUrl);
  let resumed = 0;
  let session: Buffer | undefined;
  for (let i = 0; i < connections; i++) {
    const r = await once(url, servername, session);
    if (r.reused) resumed++;
    session = r.ticket;
  }
  return { resumed, full: connections - resumed };
}
