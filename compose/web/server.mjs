// Demo upstream for the docker-compose walkthrough: every answer names the container that served it, so
// `curl -H 'Host: web' localhost:8080` in a loop shows traffic spreading over `docker-compose scale web=3`.
// One file, node builtins only: it runs on any node image (the CI stand-in has nothing but the binary).
import http from 'node:http';
import os from 'node:os';

const port = Number(process.env.PORT ?? '8000');
// Docker sets the container hostname to the short container id unless `hostname:` says otherwise.
const instance = process.env.INSTANCE_NAME || os.hostname();
// How long a stopping instance keeps serving while failing its health check, so Consul marks it critical
// and balancers drop it before its address disappears (the registrator deregisters only on `die`).
// Keep it above the check interval plus the balancer's reaction time.
const drainMs = Number(process.env.DRAIN_MS ?? '0');
// How long in-flight requests may take to finish once the listener is closed.
const shutdownGraceMs = Number(process.env.SHUTDOWN_GRACE_MS ?? '5000');

let stopping = false;

const server = http.createServer((req, res) => {
  const headers = { 'content-type': 'text/plain; charset=utf-8', 'x-served-by': instance };
  // A stopping instance tells keep-alive clients (the balancer's pool) not to reuse the connection.
  if (stopping) headers.connection = 'close';
  if (req.url === '/health') {
    res.writeHead(stopping ? 503 : 200, headers).end(stopping ? 'draining\n' : 'ok\n');
    return;
  }
  res.writeHead(200, headers).end(`web instance ${instance} answered ${req.method} ${req.url}\n`);
});
// Keep-alive idle time longer than a balancer's usual pool idle time, so the balancer closes first and
// never sends a request on a connection this side is closing.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;

server.listen(port, '0.0.0.0', () => {
  process.stdout.write(`${JSON.stringify({ component: 'web', msg: 'listening', instance, port })}\n`);
});

// `docker stop` / `docker-compose scale web=1` send SIGTERM: fail the health check for drainMs while still
// serving, then stop accepting, let in-flight requests finish, close idle keep-alive connections, exit.
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`${JSON.stringify({ component: 'web', msg: 'draining', instance, signal, drainMs })}\n`);
  setTimeout(() => {
    process.stdout.write(`${JSON.stringify({ component: 'web', msg: 'closing', instance })}\n`);
    const force = setTimeout(() => process.exit(0), shutdownGraceMs);
    force.unref();
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  }, drainMs);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
