// TLS session resumption across workers: ours with --workers 1 and 2 (the primary hands connections
// to the workers round-robin, so with 2 consecutive connections land on different workers) and the
// shared ticket keys the primary distributes. Uses the openssl command line; prints, never asserts.
//   npm run build && node dist/bench/tls-resumption.js
// TLS 1.2: `s_client -reconnect` (one full handshake, then 5 reconnects with its session), 4 times.
// TLS 1.3: the ticket of a first connection (saved with -sess_out after a request was answered, so the
// ticket the server sends after the handshake was read) offered by 8 later connections (-sess_in).
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTestCa } from '../test/support/tls-certs.js';
import { freePort, startNginx, tempDir, waitForPort } from './support/processes.js';
import { startOurs } from './support/ours.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NAME = 'bench.example.test';
const REQUEST = 'printf "GET / HTTP/1.1\\r\\nHost: bench\\r\\nConnection: close\\r\\n\\r\\n"';

function sClient(args: string): string {
  return execFileSync('sh', ['-c', `${REQUEST} | timeout 20 openssl s_client ${args} -ign_eof 2>&1 || true`], { encoding: 'utf8', timeout: 30_000 });
}

async function main(): Promise<void> {
  const upstreamPort = await freePort();
  const upstream = startNginx('1', `server { listen 127.0.0.1:${upstreamPort}; location / { return 200 "ok\\n"; } }`);
  await waitForPort(upstreamPort);
  const ca = await makeTestCa('resume');
  const pem = await ca.issue([NAME]);
  const certDir = tempDir('bench-resume-');
  writeFileSync(path.join(certDir, 'bench.pem'), pem.cert + pem.key, { mode: 0o600 });
  try {
    for (const workers of [1, 2]) {
      const ours = await startOurs({ root: repoRoot, engine: 'native', workers, cpus: '0-1', upstreamPort, tls: { certDir, defaultCert: NAME } });
      if (ours.proc === undefined || ours.baseUrl === undefined) { console.log(`workers ${workers}: did not start (${ours.note})`); continue; }
      const target = `-connect ${ours.baseUrl.replace('https://', '')} -servername ${NAME}`;
      try {
        let reused = 0;
        let total = 0;
        for (let i = 0; i < 4; i++) {
          const out = sClient(`${target} -tls1_2 -reconnect`);
          reused += (out.match(/^Reused,/gm) ?? []).length;
          total += (out.match(/^(New|Reused),/gm) ?? []).length;
        }
        console.log(`workers ${workers} TLS 1.2 -reconnect: ${reused} of ${total} handshakes resumed (at most 20 of 24: each of the 4 runs starts with a full one)`);
        const sess = path.join(certDir, `sess-${workers}.pem`);
        sClient(`${target} -tls1_3 -sess_out ${sess}`);
        let resumed = 0;
        for (let i = 0; i < 8; i++) if (/^Reused,/m.test(sClient(`${target} -tls1_3 -sess_in ${sess}`))) resumed++;
        console.log(`workers ${workers} TLS 1.3 ticket of a first connection: ${resumed} of 8 later connections resumed`);
      } finally {
        await ours.proc.stop();
      }
    }
  } finally {
    await upstream.stop();
    await ca.close();
  }
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
