// The TLS listeners of one worker: tls.Servers whose SNICallback reads the current certificate
// index (one mutable reference, replaced whole when a snapshot arrives), handing every secure socket
// to the proxy engine. Existing connections keep the context they were handshaken with.
// TLS passthrough: on a port where tcp+sni names are routed, the ClientHello is read first (bounded
// in bytes and time, put back after); a name with such a route and no certificate of ours goes to
// the TCP side untouched, every other hello (no SNI included) is terminated here as before.
// Session tickets: the primary's shared keys, renewed on every resumption (ticket-renewal.ts).
import net, { type AddressInfo, type Socket } from 'node:net';
import type { AcceptGate } from '../proxy/proxy-protocol-accept.js';
import tls from 'node:tls';
import type pino from 'pino';
import { applyCertDelta, EMPTY_CERT_SNAPSHOT, type CertDelta, type CertSnapshot } from './cert-snapshot.js';
import type { CertEntry } from './certificate.js';
import { buildCertIndex, normalizeServerName, selectCertificate, wildcardFor, type CertIndex } from './sni.js';
import { peekFirstBytes } from '../proxy/accept-peek.js';
import { MAX_HELLO_BYTES, readClientHello } from '../l4/client-hello.js';
import { alpnProtocols, TICKET_KEY_BYTES, type WorkerTlsOptions } from './tls-settings.js';
import { RateLimitedLog } from './rate-limited-log.js';
import { RenewingTicketKeys } from './ticket-renewal.js';

interface LiveCert extends CertEntry {
  readonly context: tls.SecureContext;
}

export interface TlsListenerAddress {
  readonly address: string;
  readonly port: number;
  readonly family: string;
}

/** The TCP side's tcp+sni names on --tls-listen ports (l4/tcp-side.ts makes it). */
export interface TlsPassthrough {
  readonly helloTimeoutMs: number;
  /** any tcp+sni name routed on this port? (else no hello is read: termination as without passthrough) */
  hasNames(port: number): boolean;
  serviceFor(port: number, serverName: string): string | undefined;
  /** relay the raw socket (its hello put back) to the name's service */
  relay(port: number, socket: Socket, serverName: string): void;
}

export class WorkerTls {
  #snapshot: CertSnapshot = EMPTY_CERT_SNAPSHOT;
  #index: CertIndex<LiveCert> = buildCertIndex<LiveCert>([], undefined);
  #contexts = new Map<string, LiveCert>();
  #ticketKeys: Buffer | undefined;
  readonly #tickets = new RenewingTicketKeys();
  #warnedNoRenewal = false;
  #servers: tls.Server[] = [];
  /** the net.Servers listening in front of #servers when an accept gate reads first */
  #gated: net.Server[] = [];
  #first: Promise<void>;
  #gotFirst!: () => void;
  readonly #noCertLog: RateLimitedLog;

  constructor(readonly opts: WorkerTlsOptions, private readonly log: pino.Logger) {
    this.#first = new Promise((r) => (this.#gotFirst = r));
    this.#noCertLog = new RateLimitedLog(log, 10_000, 256);
  }

  version(): string {
    return this.#snapshot.version;
  }

  /** Applies a delta; false when it is against another version (the primary then sends a full one). */
  apply(delta: CertDelta): boolean {
    const next = applyCertDelta(this.#snapshot, delta);
    if (next === undefined) return false;
    const contexts = new Map<string, LiveCert>();
    const live: LiveCert[] = [];
    for (const c of next.certs) {
      const prev = this.#contexts.get(c.id);
      let entry: LiveCert;
      if (prev && prev.fingerprint === c.fingerprint) entry = prev;
      else {
        try {
          entry = { ...c, context: tls.createSecureContext(this.#contextOptions(c)) };
        } catch (err) {
          // validated in the primary already; an OpenSSL refusal here costs this certificate only
          this.log.warn({ id: c.id, names: c.names, err: (err as Error).message }, 'certificate refused by OpenSSL, skipped');
          continue;
        }
      }
      contexts.set(c.id, entry);
      live.push(entry);
    }
    this.#contexts = contexts;
    this.#index = buildCertIndex(live, next.defaultName); // the swap: new handshakes from here on
    this.#snapshot = next;
    this.#applyDefault();
    this.#gotFirst();
    return true;
  }

  setTicketKeys(keys: Buffer): void {
    if (keys.length !== TICKET_KEY_BYTES) return;
    this.#ticketKeys = keys;
    this.#tickets.set(keys);
    // Node's own ticket keys too: they are the ones used where the renewing callback could not be armed
    for (const s of this.#servers) s.setTicketKeys(keys);
  }

  /**
   * Listens on every --tls-listen address once the first snapshot is here (bounded wait).
   * `acceptGate` (the PROXY protocol header, proxy/proxy-protocol-accept.ts) reads the first bytes
   * of each accepted socket before TLS does: the tls.Server then listens through a net.Server;
   * `passthrough` (tcp+sni names, l4/tcp-side.ts) reads the ClientHello after it, on ports with such names.
   */
  async listen(onSocket: (socket: Socket) => void, firstSnapshotTimeoutMs = 10_000, acceptGate?: AcceptGate, passthrough?: TlsPassthrough): Promise<TlsListenerAddress[]> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#first, new Promise<void>((r) => (timer = setTimeout(r, firstSnapshotTimeoutMs)))]);
    clearTimeout(timer);
    const out: TlsListenerAddress[] = [];
    for (const addr of this.opts.listen) {
      const server = tls.createServer({
        ...this.#baseOptions(),
        ...this.#defaultCertOptions(),
        // h2 first: the proxy runtime hands sockets that chose it to its HTTP/2 front
        ALPNProtocols: alpnProtocols(addr),
        handshakeTimeout: this.opts.handshakeTimeoutMs,
        SNICallback: (servername, cb) => this.#sni(servername, cb),
      });
      if (this.#ticketKeys) server.setTicketKeys(this.#ticketKeys);
      this.#armTickets(server);
      server.on('secureConnection', (socket: tls.TLSSocket) => onSocket(socket));
      server.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
        if (!socket.servername && !this.#index.defaultCert) {
          this.#noCertLog.warn('', { servername: null }, 'TLS handshake without SNI and no default certificate');
        }
        socket.destroy();
      });
      const listener: net.Server = acceptGate === undefined && passthrough === undefined ? server : net.createServer({ pauseOnConnect: true }, (raw) => {
        raw.on('error', () => undefined); // a reset during the gate or the hello peek: its 'close' ends them
        if (acceptGate === undefined) this.#route(raw, server, passthrough);
        else void acceptGate(raw).then((ok) => { if (ok && !raw.destroyed) this.#route(raw, server, passthrough); });
      });
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ host: addr.host, port: addr.port }, () => {
          listener.off('error', reject);
          listener.on('error', (err) => this.log.error({ err }, 'TLS listener error'));
          resolve();
        });
      });
      this.#servers.push(server);
      if (listener !== server) this.#gated.push(listener);
      const a = listener.address() as AddressInfo;
      out.push({ address: a.address, port: a.port, family: a.family });
    }
    return out;
  }

  /** Stop accepting (established connections belong to the proxy engine, which drains them). */
  close(): void {
    for (const s of this.#gated) s.close();
    for (const s of this.#servers) if (s.listening) s.close();
    this.#servers = [];
    this.#gated = [];
  }

  /** Terminate here, or pass through when the hello names a tcp+sni route we hold no certificate for. */
  #route(socket: Socket, server: tls.Server, passthrough: TlsPassthrough | undefined): void {
    const port = socket.localPort ?? 0;
    if (passthrough === undefined || !passthrough.hasNames(port)) {
      server.emit('connection', socket);
      return;
    }
    void peekFirstBytes(socket, (bytes) => {
      const v = readClientHello(bytes);
      return v.state === 'done' ? { state: 'done', value: v.serverName } : v;
    }, { maxBytes: MAX_HELLO_BYTES + 64, timeoutMs: passthrough.helloTimeoutMs }).then((r) => {
      if (!r.ok) {
        this.log.debug({ client: socket.remoteAddress, port, reason: r.reason }, 'no usable TLS ClientHello, closed');
        socket.destroy();
        return;
      }
      const name = r.value;
      if (name !== undefined && !this.#hasOwnCertificate(name) && passthrough.serviceFor(port, name) !== undefined) passthrough.relay(port, socket, name);
      else if (!socket.destroyed) server.emit('connection', socket);
    });
  }

  /** A certificate of ours names this server name (exact or wildcard; the default certificate alone does not count). */
  #hasOwnCertificate(serverName: string): boolean {
    const name = normalizeServerName(serverName);
    const wild = wildcardFor(name);
    return this.#index.byName.has(name) || (wild !== undefined && this.#index.byName.has(wild));
  }

  #sni(servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    const cert = selectCertificate(this.#index, servername);
    if (cert === undefined) {
      this.#noCertLog.warn(servername, { servername }, 'no certificate for this name and no default: handshake refused');
      // the server's own context has no certificate then: OpenSSL answers with a handshake_failure alert
      // (an error here would only drop the connection without one)
      cb(null, undefined);
      return;
    }
    cb(null, cert.context);
  }

  #baseOptions(): tls.SecureContextOptions {
    return {
      minVersion: this.opts.minVersion,
      maxVersion: 'TLSv1.3',
      ciphers: this.opts.ciphers,
      honorCipherOrder: true,
    };
  }

  #contextOptions(c: CertEntry): tls.SecureContextOptions {
    return { ...this.#baseOptions(), cert: c.certPem, key: c.keyPem };
  }

  #defaultCertOptions(): tls.SecureContextOptions {
    const d = this.#index.defaultCert;
    return d ? { cert: d.certPem, key: d.keyPem } : {};
  }

  /** Handshakes without SNI use the server's own context: keep it on the current default. */
  #applyDefault(): void {
    for (const s of this.#servers) {
      s.setSecureContext({ ...this.#baseOptions(), ...this.#defaultCertOptions(), ...(this.#ticketKeys ? { ticketKeys: this.#ticketKeys } : {}) });
      this.#armTickets(s); // a new context: its ticket callback is Node's again
    }
  }

  /** The server's own context encrypts every ticket (the SNI contexts lend only certificate and key). */
  #armTickets(server: tls.Server): void {
    if (this.#tickets.arm(server) || this.#warnedNoRenewal) return;
    this.#warnedNoRenewal = true;
    this.log.warn('this Node has no TLS ticket-key callback: tickets are not renewed on resumption (a client using each ticket once makes a full handshake every other connection)');
  }
}
