// balancer entry (primary process): parse flags, build the logger, start everything, stop gracefully
// on SIGTERM/SIGINT. Workers run cluster/worker-main.ts, never this file.
import pino from 'pino';
import { installProcessGuard } from '../../common/process-guard.js';
import { startPrimary, StartupError } from './cluster/primary.js';
import { ConfigError, parseBalancerArgs } from './config.js';
import { helpText } from './help.js';

/** time the stop may take beyond the workers' drain (watchers, admin close, dump flush) */
const STOP_GRACE_MS = 10_000;

async function main(): Promise<void> {
  const parsed = parseBalancerArgs(process.argv.slice(2), process.env);
  if (parsed.kind === 'help') {
    process.stdout.write(helpText());
    return;
  }
  if (parsed instanceof ConfigError) {
    process.stderr.write(`balancer: ${parsed.message}\nRun "balancer --help" for the list of flags.\n`);
    process.exitCode = 2;
    return;
  }
  const config = parsed;
  const logger = pino({ level: config.logLevel, base: { program: 'balancer', pid: process.pid } });
  const log = logger.child({ component: 'main' });
  installProcessGuard({ logger: () => log, role: 'balancer primary' });

  let handle: Awaited<ReturnType<typeof startPrimary>> | undefined;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1 || !handle) {
      // a second signal, or one during start-up: workers follow the primary out through 'disconnect'
      log.warn({ signal: sig, starting: !handle }, 'exiting now');
      process.exit(handle ? 1 : 0);
    }
    log.info({ signal: sig }, 'graceful stop');
    // last-resort bound on the whole stop (each step has its own: drain by --drain-timeout, watchers
    // by their abort signals): a step that still hangs must not keep the process alive
    const boundMs = config.drainTimeoutMs + STOP_GRACE_MS;
    setTimeout(() => {
      log.error({ signal: sig, boundMs }, 'stop did not finish in time: exiting');
      process.exit(1);
    }, boundMs).unref();
    handle.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    handle = await startPrimary(config, logger);
  } catch (err) {
    const code = (err as { code?: string }).code;
    log.fatal({ err: (err as Error).message, code }, 'balancer could not start');
    process.stderr.write(`balancer: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

main().catch((err) => {
  process.stderr.write(`balancer: ${err instanceof StartupError ? err.message : (err as Error).stack}\n`);
  process.exit(1);
});
