// One HTTP/1.1 answer read off a raw socket as latin1 text: status and body (chunked decoded), for
// tests that must write their own bytes (a PROXY protocol header, a chosen source address).

export function statusOf(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
}

/** The body of one answer; a chunked one is decoded (node's server chunks JSON answers). */
export function bodyOf(text: string): string {
  const cut = text.indexOf('\r\n\r\n');
  const head = text.slice(0, cut).toLowerCase();
  let body = text.slice(cut + 4);
  if (!head.includes('transfer-encoding: chunked')) return body;
  let out = '';
  for (;;) {
    const nl = body.indexOf('\r\n');
    const size = parseInt(body.slice(0, nl), 16);
    if (!(size > 0)) return out;
    out += body.slice(nl + 2, nl + 2 + size);
    body = body.slice(nl + 4 + size);
  }
}
