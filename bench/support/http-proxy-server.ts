// Baseline for the proxy benchmark: npm http-proxy in one process, upstream keep-alive on.
// usage: node dist/bench/support/http-proxy-server.js <listenPort> <targetUrl>
import http from 'node:http';
// http-proxy ships no types; this is a benchmark baseline, so a narrow local type is enough.
// @ts-ignore
import httpProxy from 'http-proxy';

const [portArg, target] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
const proxy = (httpProxy as { createProxyServer(o: object): { web(req: unknown, res: unknown): void; on(e: string, f: (...a: unknown[]) => void): void } })
  .createProxyServer({ target, agent, xfwd: true });
proxy.on('error', (_err, _req, res) => {
  const r = res as http.ServerResponse;
  if (!r.headersSent) r.writeHead(502);
  r.end();
});
http.createServer((req, res) => proxy.web(req, res)).listen(Number(portArg), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
