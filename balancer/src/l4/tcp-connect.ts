// Connect to one server of a TCP service, retrying on another server while no byte was relayed
// (nothing is read from the client before the upstream connection stands, so a retry is always
// safe). Every attempt has the connect timeout and is abandoned when the client goes away.
import net, { type Socket } from 'node:net';
import type { ServerSpec } from '../routing/types.js';

export interface ConnectAttemptFailure {
  readonly server: ServerSpec;
  readonly error: string;
  readonly ms: number;
}

export interface TcpConnectHooks {
  /** the next server to try, `tried` excluded; undefined = none left */
  pick(tried: ReadonlySet<string>): ServerSpec | undefined;
  onAttemptStart(server: ServerSpec): void;
  onAttemptFailed(failure: ConnectAttemptFailure): void;
}

export type ConnectOutcome =
  | { readonly ok: true; readonly socket: Socket; readonly server: ServerSpec; readonly connectMs: number; readonly attempts: number }
  | { readonly ok: false; readonly reason: 'no-server' | 'all-failed' | 'client-gone'; readonly attempts: number };

export async function connectWithRetry(hooks: TcpConnectHooks, tries: number, connectMs: number, clientGone: AbortSignal, now: () => number): Promise<ConnectOutcome> {
  const tried = new Set<string>();
  for (let attempt = 0; attempt < Math.max(1, tries); attempt++) {
    if (clientGone.aborted) return { ok: false, reason: 'client-gone', attempts: attempt };
    const server = hooks.pick(tried);
    if (server === undefined) return { ok: false, reason: attempt === 0 ? 'no-server' : 'all-failed', attempts: attempt };
    tried.add(server.id);
    hooks.onAttemptStart(server);
    const t0 = now();
    try {
      const socket = await connectOnce(server, connectMs, clientGone);
      return { ok: true, socket, server, connectMs: now() - t0, attempts: attempt + 1 };
    } catch (err) {
      hooks.onAttemptFailed({ server, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message, ms: now() - t0 });
    }
  }
  return { ok: false, reason: 'all-failed', attempts: Math.max(1, tries) };
}

function connectOnce(server: ServerSpec, timeoutMs: number, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port, allowHalfOpen: true });
    const done = (err?: Error) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.removeListener('error', onError);
      socket.removeListener('connect', onConnect);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve(socket);
    };
    const onError = (err: Error) => done(err);
    const onConnect = () => {
      socket.setNoDelay(true);
      done();
    };
    const onAbort = () => done(Object.assign(new Error('client went away'), { code: 'ECLIENTGONE' }));
    const timer = setTimeout(() => done(Object.assign(new Error(`connect timeout after ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    socket.once('error', onError);
    socket.once('connect', onConnect);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
