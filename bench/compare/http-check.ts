// Readiness: a run starts only once the target answers a run of requests for the service in a row.
import http from 'node:http';

function getStatus(port: number, host: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(undefined));
    });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

export async function waitUntilServing(port: number, host: string, inARow = 20, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let ok = 0;
  while (ok < inARow && Date.now() < deadline) {
    const status = await getStatus(port, host, 2000);
    if (status === 200) ok++;
    else {
      ok = 0;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  if (ok < inARow) throw new Error(`127.0.0.1:${port} did not answer ${inARow} requests for Host ${host} in a row within ${timeoutMs} ms`);
}
