// Process-level last resort for both programs: an exception or rejection nobody handled is logged with
// context (role, pid, origin, stack) instead of Node's bare stderr dump. What follows depends on the
// process: a balancer worker exits (code 70) so its supervisor restarts it with backoff from a clean
// state; the primary and the registrator keep running after an unhandled rejection (one lost promise
// must not stop every service) but exit on an uncaught exception, whose state cannot be trusted.

export interface GuardLogger {
  fatal(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ProcessGuardOptions {
  /** read on each event: a worker replaces its logger once it knows its level */
  readonly logger: () => GuardLogger;
  readonly role: string;
  /** exit on an unhandled rejection too (workers); default false */
  readonly exitOnRejection?: boolean;
  /** injected in tests; default process.exit */
  readonly exit?: (code: number) => void;
  readonly target?: NodeJS.Process;
}

/** Exit code of a process that stopped on an unhandled error (EX_SOFTWARE). */
export const EXIT_UNHANDLED = 70;

function describe(reason: unknown): { message: string; stack?: string; type: string } {
  if (reason instanceof Error) return { message: reason.message, stack: reason.stack, type: reason.name };
  let message: string;
  try {
    message = typeof reason === 'string' ? reason : JSON.stringify(reason) ?? String(reason);
  } catch {
    message = String(reason);
  }
  return { message: message.slice(0, 2000), type: typeof reason };
}

/** Installs the handlers; returns a function that removes them. */
export function installProcessGuard(opts: ProcessGuardOptions): () => void {
  const target = opts.target ?? process;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let exiting = false;
  const stop = () => {
    if (exiting) return;
    exiting = true;
    exit(EXIT_UNHANDLED);
  };
  const onException = (err: unknown, origin: string) => {
    try {
      opts.logger().fatal({ role: opts.role, pid: process.pid, origin, err: describe(err) }, `uncaught exception in ${opts.role}: exiting`);
    } finally {
      stop();
    }
  };
  const onRejection = (reason: unknown) => {
    const fatal = opts.exitOnRejection === true;
    try {
      const log = opts.logger();
      const entry = { role: opts.role, pid: process.pid, origin: 'unhandledRejection', err: describe(reason) };
      if (fatal) log.fatal(entry, `unhandled promise rejection in ${opts.role}: exiting`);
      else log.error(entry, `unhandled promise rejection in ${opts.role}: logged, still running`);
    } finally {
      if (fatal) stop();
    }
  };
  target.on('uncaughtException', onException);
  target.on('unhandledRejection', onRejection);
  return () => {
    target.off('uncaughtException', onException);
    target.off('unhandledRejection', onRejection);
  };
}
