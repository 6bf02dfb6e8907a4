// The Consul-using integration tests once more, against ONE Consul double started once for the
// whole run, exactly as a real agent is used (CONSUL_HTTP_ADDR set, every test sharing its state).
// A test that reuses another's names or leaves registrations behind fails here, not only against a
// real agent. Usage (after a build): node dist/test/support/shared-consul-pass.js [--rounds N]
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '1' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 10) {
  process.stderr.write(`shared-consul-pass: --rounds must be 1..10, got ${values.rounds}\n`);
  process.exit(2);
}

const here = dirname(fileURLToPath(import.meta.url));
const integrationDir = join(here, '..', 'integration');
// the tests that reach Consul through consulForTest(): the ones that must run unchanged on a shared agent
const files = readdirSync(integrationDir)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => readFileSync(join(integrationDir, f), 'utf8').includes('consulForTest('))
  .sort()
  .map((f) => join(integrationDir, f));
if (files.length === 0) {
  process.stderr.write(`shared-consul-pass: no Consul-using test found in ${integrationDir} (build first)\n`);
  process.exit(1);
}

const double = spawn(process.execPath, [join(here, 'consul-double', 'cli.js'), '--port', '0', '--run-checks'], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('the shared Consul double did not start within 10 s')), 10_000);
  let buffered = '';
  double.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const line = buffered.split('\n').find((l) => l.includes('"listening"'));
    if (line) {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    }
  });
  double.once('exit', (code) => reject(new Error(`the shared Consul double exited with ${code}`)));
});
double.stdout!.resume();
process.stdout.write(`shared-consul-pass: ${files.length} test files, ${rounds} round(s), one Consul double at ${url}\n`);

let exitCode = 0;
for (let round = 1; round <= rounds && exitCode === 0; round++) {
  process.stdout.write(`shared-consul-pass: round ${round}\n`);
  exitCode = await new Promise<number>((resolve) => {
    const run = spawn(process.execPath, ['--test', '--test-concurrency=1', ...files], {
      stdio: 'inherit',
      env: { ...process.env, CONSUL_HTTP_ADDR: url },
    });
    run.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}
double.kill('SIGTERM');
process.exit(exitCode);
