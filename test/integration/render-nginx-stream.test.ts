// templates/nginx-stream.conf.hbs against a real (Debian) nginx with its stream module: TCP services
// render as a `stream {}` block (upstream + `server { listen; proxy_pass; }` per port; tcp+sni as
// ssl_preread + a map of server names per port), the HTTP template leaves them out, `nginx -t`
// accepts both files, and traffic flows: a plain TCP port reaches both echo instances, two TLS names
// on one port reach two services with the client verifying each backend's own certificate
// (passthrough), an unknown name is closed. Consul text that is not safe for nginx is left out, with
// a warning, and conflicting claims resolve as the balancer's workers resolve them (l4/tcp-routes.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { join } from 'node:path';
import type { DependencyValue, RenderData, ServiceInstanceView } from '../../balancer/src/render/dependencies.js';
import { compileTemplate } from '../../balancer/src/render/template.js';
import { freePort } from '../support/free-port.js';
import { untilRetryingErrors } from '../support/poll.js';
import { repoRoot } from '../support/repo-root.js';
import { makeTestCa } from '../support/tls-certs.js';

const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
const STREAM_MODULE = ['/usr/lib/nginx/modules/ngx_stream_module.so'].find((p) => existsSync(p));
const streamTpl = compileTemplate(readFileSync(join(repoRoot(), 'templates/nginx-stream.conf.hbs'), 'utf8'), 'nginx-stream.conf.hbs');
const httpTpl = compileTemplate(readFileSync(join(repoRoot(), 'templates/nginx-upstreams.conf.hbs'), 'utf8'), 'nginx-upstreams.conf.hbs');

function inst(name: string, id: string, port: number, tags: string[], address = '127.0.0.1'): ServiceInstanceView {
  return { ID: id, Name: name, Node: 'node1', NodeAddress: '127.0.0.1', Address: address, Port: port, Tags: tags, Meta: {}, Status: 'passing' };
}

function renderData(services: Record<string, { tags: string[]; instances: ServiceInstanceView[] }>, env: Record<string, string>): RenderData {
  const values: Record<string, DependencyValue> = {
    services: { kind: 'services', value: Object.entries(services).map(([Name, s]) => ({ Name, Tags: s.tags })) },
  };
  for (const [name, s] of Object.entries(services)) values[`service:${name}`] = { kind: 'service', value: s.instances };
  return { values: new Map(Object.entries(values)), env };
}

async function listenOn(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/** what a TCP echo-with-name answers to "hi" */
function tcpSay(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    s.setTimeout(5000, () => s.destroy(new Error('no answer in 5 s')));
    s.setEncoding('utf8');
    s.on('data', (d: string) => { text += d; if (text.endsWith('\n')) s.end(); });
    s.on('error', reject);
    s.on('close', () => resolve(text));
    s.write('hi');
  });
}

/** a TLS handshake through the port for `servername`, verifying against `ca`: the backend's greeting, or 'closed' */
function tlsHello(port: number, servername: string, ca: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername, ca });
    let text = '';
    s.setTimeout(5000, () => s.destroy());
    s.setEncoding('utf8');
    s.on('data', (d: string) => { text += d; });
    s.on('error', () => undefined);
    s.on('close', () => resolve(text === '' ? 'closed' : text));
  });
}

test('nginx-stream.conf.hbs: TCP and tcp+sni services as an nginx stream block; nginx -t accepts it; traffic reaches each service', async () => {
  assert.ok(NGINX && STREAM_MODULE, 'nginx or its stream module is not installed (Debian nginx-light + libnginx-mod-stream, as .ci/run installs)');
  const dir = await mkdtemp(join(os.tmpdir(), 'render-nginx-stream-'));
  const ca = await makeTestCa('nginx-stream');
  const servers: net.Server[] = [];
  let nginx: ChildProcess | undefined;
  try {
    // two echo instances that name themselves, two TLS backends with their own certificates
    const echoPorts: number[] = [];
    for (const name of ['e1', 'e2']) {
      const s = net.createServer((c) => c.once('data', () => c.end(`${name}\n`)));
      servers.push(s);
      echoPorts.push(await listenOn(s));
    }
    const tlsPorts: number[] = [];
    for (const name of ['a.example.test', 'x.b.example.test']) {
      const pem = await ca.issue([name]);
      const s = tls.createServer({ cert: pem.cert, key: pem.key }, (c) => c.end(`hello from ${name}`));
      servers.push(s);
      tlsPorts.push(await listenOn(s));
    }
    const [tcpPort, sniPort, idlePort] = [await freePort(), await freePort(), await freePort()];
    const redisTags = ['proto=tcp', `urlprefix-:${tcpPort}`, 'lb=leastconn'];
    const services = {
      cache: { tags: redisTags, instances: [inst('cache', 'c1', echoPorts[0], redisTags), inst('cache', 'c2', echoPorts[1], [...redisTags, 'weight=2'])] },
      // the same port claimed later by name: cache keeps it, as in the workers
      late: { tags: ['proto=tcp', `urlprefix-:${tcpPort}`], instances: [inst('late', 'l1', 9, [])] },
      hashed: { tags: ['proto=tcp', `urlprefix-:${idlePort}`, 'lb=chash'], instances: [] as ServiceInstanceView[] },
      dba: { tags: [`urlprefix-a.example.test:${sniPort} proto=tcp+sni`], instances: [inst('dba', 'a1', tlsPorts[0], [])] },
      dbb: { tags: ['proto=tcp+sni', `urlprefix-*.b.example.test:${sniPort}`, `urlprefix-bad;name:${sniPort}`], instances: [inst('dbb', 'b1', tlsPorts[1], ['backup'])] },
      // a plain claim on an SNI port is refused
      plainonsni: { tags: ['proto=tcp', `urlprefix-:${sniPort}`], instances: [inst('plainonsni', 'p1', 9, [])] },
      // backup servers only: nginx refuses such an upstream (HTTP and stream alike), so they are plain servers
      solo: { tags: [], instances: [inst('solo', 's1', 9, ['backup'])] },
      web: { tags: ['urlprefix-/web'], instances: [inst('web', 'w1', 9, []), inst('web', 'w2', 10, ['weight=1;evil'], '10.0.0.1;')] },
    };
    const data = renderData(services, { NGINX_STREAM_HOST: '127.0.0.1', NGINX_LISTEN: `127.0.0.1:${await freePort()}` });
    const stream = streamTpl.render(data);
    const http = httpTpl.render(data);
    assert.equal(stream.complete, true);
    const text = stream.output;
    assert.match(text, /^stream \{$/m);
    assert.match(text, new RegExp(`upstream cache \\{\\n {4}least_conn;\\n {4}server 127\\.0\\.0\\.1:${echoPorts[0]} weight=1 max_fails=1 fail_timeout=10s;\\n {4}server 127\\.0\\.0\\.1:${echoPorts[1]} weight=2 `));
    assert.match(text, /upstream hashed \{\n {4}hash \$remote_addr consistent;\n(?: {4}#[^\n]*\n)? {4}server 127\.0\.0\.1:9 down;\n/);
    assert.match(text, new RegExp(`server \\{\\n {4}listen 127\\.0\\.0\\.1:${tcpPort};\\n {4}proxy_pass cache;\\n`));
    assert.match(text, new RegExp(`map \\$ssl_preread_server_name \\$balancer_sni_${sniPort} \\{\\n {4}hostnames;\\n {4}default balancer\\.no-route;\\n {4}\\*\\.b\\.example\\.test dbb;\\n {4}a\\.example\\.test dba;\\n {2}\\}`));
    assert.match(text, new RegExp(`listen 127\\.0\\.0\\.1:${sniPort};\\n {4}ssl_preread on;\\n {4}proxy_pass \\$balancer_sni_${sniPort};`));
    assert.doesNotMatch(text, /upstream web|proxy_pass late|bad;name|proxy_pass plainonsni/);
    assert.equal((text.match(new RegExp(`listen 127\\.0\\.0\\.1:${tcpPort};`, 'g')) ?? []).length, 1, 'one server per port');
    for (const w of [`claimed by cache and late; cache keeps it`, 'plain proto=tcp claim refused', 'bad;name']) {
      assert.ok(stream.warnings.some((x) => x.includes(w)), `warning "${w}" in ${JSON.stringify(stream.warnings)}`);
    }
    // the HTTP template leaves the TCP services to the stream one; a bad address never reaches either
    assert.match(http.output, /upstream web \{/);
    assert.match(http.output, /upstream solo \{\n {2}server 127\.0\.0\.1:9 weight=1 max_fails=1 fail_timeout=10s;\n/);
    assert.match(text, new RegExp(`upstream dbb \\{\\n {4}server 127\\.0\\.0\\.1:${tlsPorts[1]} weight=1 max_fails=1 fail_timeout=10s;\\n`));
    assert.doesNotMatch(http.output, /upstream (cache|dba|dbb|late|hashed|plainonsni) |10\.0\.0\.1;|evil/);
    assert.doesNotMatch(http.output, /^ {2}(cache|dba|dbb) /m);

    for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) await mkdir(join(dir, sub));
    await writeFile(join(dir, 'stream.conf'), text);
    await writeFile(join(dir, 'upstreams.conf'), http.output);
    const conf = join(dir, 'nginx.conf');
    const user = process.getuid?.() === 0 ? 'user root root;\n' : '';
    await writeFile(conf, `load_module ${STREAM_MODULE};
${user}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log info;
events { worker_connections 256; }
include ${dir}/stream.conf;
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/upstreams.conf;
}
`);
    const check = spawnSync(NGINX!, ['-t', '-p', `${dir}/`, '-c', conf], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(check.status, 0, `nginx -t: ${check.stderr}\n${text}`);

    nginx = spawn(NGINX!, ['-p', `${dir}/`, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let nginxStderr = '';
    nginx.stderr!.on('data', (c: Buffer) => (nginxStderr += c.toString()));
    await untilRetryingErrors('nginx stream listening', async () => /^e[12]\n$/.test(await tcpSay(tcpPort)), 20_000, 50).catch((err: Error) => {
      throw new Error(`${err.message}; nginx stderr: ${nginxStderr}`);
    });
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add(await tcpSay(tcpPort));
    assert.deepEqual([...seen].sort(), ['e1\n', 'e2\n'], 'both instances of the TCP service reached');
    // passthrough: the client verifies each backend's own certificate for the name it asked
    assert.equal(await tlsHello(sniPort, 'a.example.test', ca.cert), 'hello from a.example.test');
    assert.equal(await tlsHello(sniPort, 'x.b.example.test', ca.cert), 'hello from x.b.example.test');
    assert.equal(await tlsHello(sniPort, 'nobody.example.test', ca.cert), 'closed', 'a name no service claims is closed');
  } finally {
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((r) => nginx!.once('exit', r));
      nginx.kill('SIGQUIT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (nginx.exitCode === null) nginx.kill('SIGKILL');
    }
    for (const s of servers) s.close();
    await ca.close();
    await rm(dir, { recursive: true, force: true });
  }
});
