// A tiny authoritative DNS responder on loopback UDP for tests (Pebble's -dnsserver): A queries get
// whatever `answer(name)` returns (it may wait, so a test can hold a lookup); every other type, and
// names it does not know, get an empty NOERROR answer. RFC 1035 section 4 wire format.
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';

export interface DnsResponder {
  readonly port: number;
  readonly queries: string[];
  close(): Promise<void>;
}

function readName(msg: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = offset;
  for (let guard = 0; guard < 128; guard++) {
    const len = msg[i];
    if (len === undefined) throw new Error('truncated name');
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: i + 1 };
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  throw new Error('name too long');
}

export async function startDnsResponder(answer: (name: string) => string | undefined | Promise<string | undefined>): Promise<DnsResponder> {
  const socket = dgram.createSocket('udp4');
  const queries: string[] = [];
  socket.on('message', (msg, rinfo) => {
    void (async () => {
      if (msg.length < 12) return;
      const { name, end } = readName(msg, 12);
      const qtype = msg.readUInt16BE(end);
      const question = msg.subarray(12, end + 4);
      queries.push(`${name}/${qtype}`);
      const ip = qtype === 1 ? await answer(name) : undefined;
      const header = Buffer.alloc(12);
      msg.copy(header, 0, 0, 2); // id
      header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100), 2); // QR, AA, RD copied
      header.writeUInt16BE(1, 4);
      header.writeUInt16BE(ip ? 1 : 0, 6);
      const parts = [header, question];
      if (ip) {
        const rr = Buffer.alloc(16);
        rr.writeUInt16BE(0xc00c, 0); // pointer to the question name
        rr.writeUInt16BE(1, 2);
        rr.writeUInt16BE(1, 4);
        rr.writeUInt32BE(0, 6);
        rr.writeUInt16BE(4, 10);
        ip.split('.').forEach((o, k) => rr.writeUInt8(Number(o), 12 + k));
        parts.push(rr);
      }
      socket.send(Buffer.concat(parts), rinfo.port, rinfo.address);
    })().catch(() => undefined);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: (socket.address() as AddressInfo).port,
    queries,
    close: () => new Promise((r) => socket.close(() => r())),
  };
}
