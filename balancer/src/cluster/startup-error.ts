// Why the primary did not start; main.ts prints the message and exits with a code per `code`.
export class StartupError extends Error {
  /** ERR_CONSUL_UNREACHABLE, ERR_RELOAD_MODE_UNAVAILABLE, ERR_WORKER_START, ERR_ADMIN_LISTEN, or the code of the cause */
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'StartupError';
  }
}
