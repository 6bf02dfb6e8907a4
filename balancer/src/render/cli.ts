// Standalone renderer: consul-template's job without the proxy, to drive nginx (or anything else).
//   node dist/balancer/src/render/cli.js --consul 127.0.0.1:8500 \
//     --render templates/nginx-upstreams.conf.hbs:/etc/nginx/conf.d/upstreams.conf \
//     --reload-command "nginx -s reload" [--wait 2s:10s] [--once] [--log-level info]
// Every flag also reads an environment variable: CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, BALANCER_RENDER
// (comma separated), BALANCER_RELOAD_COMMAND, BALANCER_WAIT.
import pino from 'pino';
import { parseWaitSpec, type WaitSpec } from './quiescence.js';
import { startRenderJobs } from './render-jobs.js';

export interface RenderCliOptions {
  readonly consulUrl: string;
  readonly token?: string;
  readonly renders: { template: string; output: string }[];
  readonly reloadCommand?: string;
  readonly wait?: WaitSpec;
  readonly once: boolean;
  readonly logLevel: string;
}

export class RenderCliError extends Error {
  readonly code = 'ERR_RENDER_CLI';
}

const USAGE = `usage: render --render <template>:<output> [--render ...] [--consul host:port] [--consul-token t]
              [--reload-command "cmd"] [--wait min[:max]] [--once] [--log-level level]`;

export function parseRenderCliArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): RenderCliOptions {
  const renders: { template: string; output: string }[] = [];
  let consul = env.CONSUL_HTTP_ADDR ?? '127.0.0.1:8500';
  let token = env.CONSUL_HTTP_TOKEN;
  let reloadCommand = env.BALANCER_RELOAD_COMMAND;
  let waitText = env.BALANCER_WAIT;
  let once = false;
  let logLevel = env.BALANCER_LOG_LEVEL ?? 'info';
  const envRenders = env.BALANCER_RENDER ? env.BALANCER_RENDER.split(',') : [];
  const cliRenders: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = a.startsWith('--') ? (eq > 0 ? a.slice(2, eq) : a.slice(2)) : '';
    const value = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new RenderCliError(`--${name} needs a value\n${USAGE}`);
      return v;
    };
    switch (name) {
      case 'render': cliRenders.push(value()); break;
      case 'consul': consul = value(); break;
      case 'consul-token': token = value(); break;
      case 'reload-command': reloadCommand = value(); break;
      case 'wait': waitText = value(); break;
      case 'log-level': logLevel = value(); break;
      case 'once': once = true; break;
      default: throw new RenderCliError(`unknown argument "${a}"\n${USAGE}`);
    }
  }
  for (const r of cliRenders.length > 0 ? cliRenders : envRenders) {
    const colon = r.indexOf(':');
    if (colon <= 0 || colon === r.length - 1) throw new RenderCliError(`--render: expected <template>:<output>, got "${r}"`);
    renders.push({ template: r.slice(0, colon), output: r.slice(colon + 1) });
  }
  if (renders.length === 0) throw new RenderCliError(`at least one --render is required\n${USAGE}`);
  let wait: WaitSpec | undefined;
  try {
    wait = waitText ? parseWaitSpec(waitText) : undefined;
  } catch (err) {
    throw new RenderCliError(`--wait: ${(err as Error).message}`);
  }
  const consulUrl = /^[a-z]+:\/\//i.test(consul) ? consul : `http://${consul}`;
  return { consulUrl, token, renders, reloadCommand, wait, once, logLevel };
}

export async function runRenderCli(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Promise<number> {
  let opts: RenderCliOptions;
  try {
    opts = parseRenderCliArgs(argv, env);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  const logger = pino({ level: opts.logLevel, base: { pid: process.pid } });
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const handle = await startRenderJobs({
      consul: { baseUrl: opts.consulUrl, token: opts.token },
      renders: opts.renders,
      reloadCommand: opts.reloadCommand,
      wait: opts.wait,
      logger,
      signal: ac.signal,
    });
    if (opts.once) {
      await handle.firstComplete;
      await handle.stop();
      return 0;
    }
    await new Promise<void>((resolve) => ac.signal.addEventListener('abort', () => resolve(), { once: true }));
    await handle.stop();
    return 0;
  } catch (err) {
    logger.error({ code: (err as { code?: string }).code, err: (err as Error).message }, 'renderer failed');
    return 1;
  }
}

// Run when executed directly (node dist/balancer/src/render/cli.js ...), not when imported.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  void runRenderCli(process.argv.slice(2), process.env).then((code) => {
    process.exitCode = code;
  });
}
