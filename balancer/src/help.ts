// `balancer --help`: rendered from the FLAGS table so the text cannot drift from the parser.
import { FLAGS } from './config.js';

export function helpText(): string {
  const rows = FLAGS.map((f) => {
    const left = `  --${f.name}${f.value ? ` <${f.value}>` : ''}`;
    const env = f.env ? `  [env ${f.env}]` : '';
    const def = f.def ? ` (default ${f.def})` : '';
    return `${left.padEnd(48)} ${f.help}${def}${env}`;
  });
  return [
    'Usage: balancer [flags]',
    '',
    'HTTP reverse proxy whose upstreams follow the Consul catalog.',
    'A flag wins over its environment variable; durations take ms, s, m or h (bare number = seconds).',
    '',
    'Flags:',
    ...rows,
    '',
    'Upstreams: a Consul service is routed by Host header (service name) and by urlprefix- tags.',
    'Active checks from tags: check=http:/<path>|tcp|grpc|grpc:<service> (grpc: grpc.health.v1.Health/Check,',
    '  healthy only when SERVING), check_interval=, check_timeout=, rise=, fall=, check_expect= (see README).',
    'The Consul service named "consul" itself is never proxied unless --services lists it.',
    'Upstreams set through the admin API (POST /upstream/:name) coexist with Consul ones; for the',
    'same name the admin API wins until DELETE /upstream/:name. Admin upstreams persist in the dump file.',
    'In --mode reload the rendered config is the only source: admin writes answer 409.',
    '',
    'Admin API: GET /list /detail /upstream/:name /status /healthz /table,',
    '           GET /metrics (Prometheus; JSON with Accept: application/json), GET / (live dashboard),',
    '           POST /upstream/:name (dyups text "server host:port weight=2;" or JSON {"servers":[...]}),',
    '           DELETE /upstream/:name',
    '           GET /policy, GET|PUT|DELETE /policy/:service (canary, sticky, panic threshold; JSON),',
    '           GET /scripts, GET|PUT|DELETE /scripts/:name (request scripts; see README)',
    '',
    'Exit codes: 0 stopped by signal, 1 start-up failure (e.g. --strong-dependency and Consul down), 2 bad flag.',
    '',
  ].join('\n');
}
