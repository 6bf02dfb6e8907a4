// Runs wrk against a URL and returns its figures (parsed from the JSON line wrk-report.lua prints).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface WrkResult {
  requests: number;
  /** response bytes read */
  bytes: number;
  durationS: number;
  rps: number;
  errors: number;
  non2xx: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface WrkOptions {
  url: string;
  host?: string;
  threads?: number;
  connections?: number;
  durationS?: number;
  /** CPU list for taskset, e.g. "1" */
  cpus?: string;
  /** send `Connection: close`: every request on a new connection (with TLS: a new handshake) */
  closeConnection?: boolean;
  /** POST a body of this many bytes with every request */
  postBytes?: number;
}

// The .lua file stays beside the source; from dist/bench/support walk back to the repo's bench/support.
function luaScript(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const repoRoot = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../..') : path.resolve(here, '../..');
  return path.join(repoRoot, 'bench', 'support', 'wrk-report.lua');
}

export function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${opts.threads ?? 1}`, `-c${opts.connections ?? 50}`, `-d${opts.durationS ?? 5}s`,
    '--timeout', '5s', '-s', luaScript(), opts.url,
  ];
  const cmd = opts.cpus ? 'taskset' : 'wrk';
  const argv = opts.cpus ? ['-c', opts.cpus, 'wrk', ...args] : args;
  const timeoutMs = ((opts.durationS ?? 5) + 30) * 1000;
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { env: { ...process.env, WRK_HOST: opts.host ?? '', WRK_CLOSE: opts.closeConnection ? '1' : '',
      WRK_POST_BYTES: opts.postBytes === undefined ? '' : String(opts.postBytes) }, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk failed: ${err.message}\n${stderr}`));
      const line = stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
      if (!line) return reject(new Error(`wrk printed no report:\n${stdout}\n${stderr}`));
      const j = JSON.parse(line.slice('WRK_JSON '.length));
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
      const durationS = j.duration_us / 1e6;
      resolve({
        requests: j.requests,
        bytes: j.bytes,
        durationS,
        rps: j.requests / durationS,
        errors: j.connect_errors + j.read_errors + j.write_errors + j.timeouts,
        non2xx,
        p50Ms: j.p50_us / 1000,
        p90Ms: j.p90_us / 1000,
        p99Ms: j.p99_us / 1000,
        maxMs: j.max_us / 1000,
      });
    });
  });
}
