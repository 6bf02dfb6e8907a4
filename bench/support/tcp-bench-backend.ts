// The TCP benchmark's backend, one port, two modes picked by a connection's first byte:
// 'p' = ping ("pong\n" once the line arrived, then the client closes), 'b' + 12 digits = bulk
// (every byte counted; "done <n>\n" once the announced n bytes arrived).
// usage: node dist/bench/support/tcp-bench-backend.js <port>
import net from 'node:net';

const port = Number(process.argv[2]);
net.createServer({ allowHalfOpen: true }, (s) => {
  s.setNoDelay(true);
  let mode = '';
  let n = 0;
  let total = Infinity;
  s.on('error', () => undefined);
  s.on('data', (d: Buffer) => {
    if (mode === '') {
      mode = String.fromCharCode(d[0]);
      if (mode === 'b') total = Number(d.toString('latin1', 1, 13));
    }
    const before = n;
    n += d.length;
    if (mode === 'p' && d.includes(0x0a)) s.end('pong\n');
    else if (mode === 'b' && before < total && n >= total) s.write(`done ${n}\n`);
  });
  s.on('end', () => s.end());
}).listen(port, '127.0.0.1');
