// A few HTTP/2 requests with node's client, collected whole: status, headers, body text, trailers.
import http2, { type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';

export interface H2Answer {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly text: string;
  readonly trailers: http2.IncomingHttpHeaders | undefined;
}

export function h2connect(url: string, opts: http2.SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(url, { rejectUnauthorized: false, ...opts });
    s.once('connect', () => { s.off('error', reject); s.on('error', () => undefined); resolve(s); });
    s.once('error', reject);
  });
}

export function h2request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer, timeoutMs = 10_000): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    const timer = setTimeout(() => { req.close(); reject(new Error(`no answer within ${timeoutMs} ms`)); }, timeoutMs);
    let status = 0;
    let got: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    req.on('response', (h) => { got = h; status = Number(h[':status']); });
    req.on('trailers', (t) => { trailers = t; });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => { clearTimeout(timer); resolve({ status, headers: got, text: Buffer.concat(chunks).toString(), trailers }); });
    req.on('error', (err) => { clearTimeout(timer); reject(err); });
    if (body !== undefined) req.end(body);
  });
}
