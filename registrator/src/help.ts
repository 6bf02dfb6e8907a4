// The `registrator -help` text: every flag and environment variable (config.ts parses them).
import { DEFAULT_CONSUL_MAX_CONNS, DEFAULT_CONSUL_PORT, DEFAULT_DOCKER_HOST, DEFAULT_RETRY_INTERVAL_MS } from './config.js';

export function helpText(programName = 'registrator'): string {
  return `Usage: ${programName} [options] <registry-uri>

Registers Docker containers' ports as Consul services (gliderlabs/registrator compatible).

Registry URI:
  consul://host:port          Consul agent over HTTP (default 127.0.0.1:${DEFAULT_CONSUL_PORT})
  consul-tls://host:port      Consul agent over HTTPS
  consul-unix:///path.sock    Consul agent on a Unix socket

Options (-flag and --flag both work; -flag=value or -flag value; booleans are bare or -flag=false):
  -internal                   Register the container IP and exposed ports instead of published ones
  -ip <addr>                  Address to register for published ports (overrides the binding's HostIp)
  -tags <t1,t2>               Tags appended to every service (comma list, "\\," escapes a comma;
                              {{.Hostname}} {{.ContainerName}} {{.ContainerHostname}} {{.ContainerID}}
                              {{.Image}} are expanded)
  -resync <seconds>           Full resync with Docker every N seconds (0 = off, the default)
  -cleanup                    At start-up and every resync remove services registered by this
                              registrator whose container is gone (found by Meta
                              "registrator-instance"; services of the same Docker engine
                              ("registrator-engine") only when their instance names no live
                              registrator: no presence heartbeat in KV registrator/instances/ for 30 s)
  -deregister <policy>        When a container stops: "always" (default) or "on-success" (exit code 0)
  -explicit                   Only register ports that have SERVICE_NAME or SERVICE_<port>_NAME
  -useIpFromLabel <label>     Use the container's value of this label as the service address
  -retry-attempts <n>         Consul connection attempts at start-up (-1 = forever, default 0)
  -retry-interval <ms>        Pause between those attempts in milliseconds (default ${DEFAULT_RETRY_INTERVAL_MS})
  -ttl <seconds>              Add a TTL check to every service that the registrator keeps passing
  -ttl-refresh <seconds>      How often to pass it; -ttl and -ttl-refresh go together, refresh < ttl
  -health-gate <mode>         Docker HEALTHCHECK handling: "off" (default), "register-when-healthy"
                              (register only once healthy, deregister when unhealthy) or "mirror"
                              (register at once with a TTL check that follows the container health)
  -hostname <name>            Host name used as service ID prefix and instance marker (default: OS host name)
  -docker-host <uri>          Docker endpoint (default DOCKER_HOST or ${DEFAULT_DOCKER_HOST})
  -log-level <level>          fatal, error, warn, info (default), debug, trace or silent
  -drain-on-stop              On the stop signal (Docker "kill" event, before "die") put the container's
                              services into Consul maintenance so no new traffic reaches them; they are
                              deregistered on "die" (default true; -drain-on-stop=false turns it off).
                              The application must keep serving new requests 2 s after SIGTERM (README)
  -metrics <host:port>        Prometheus GET /metrics on this address (default off)
  -consul-max-conns <n>       Agent calls in flight at most, shared by registration, resync, cleanup
                              and TTL refresh (default ${DEFAULT_CONSUL_MAX_CONNS}); 429 or a closed connection backs off
  -help, -h                   Print this help
  -version                    Print the version

Environment:
  CONSUL_HTTP_TOKEN           ACL token sent to Consul
  CONSUL_CACERT               CA certificate file for consul-tls / CONSUL_HTTP_SSL
  CONSUL_CLIENT_CERT          Client certificate file (CONSUL_TLSCERT also accepted)
  CONSUL_CLIENT_KEY           Client key file (CONSUL_TLSKEY also accepted)
  CONSUL_HTTP_SSL             true: use HTTPS with a consul:// URI
  CONSUL_HTTP_SSL_VERIFY      false: do not verify Consul's TLS certificate
  DOCKER_HOST                 Docker endpoint when -docker-host is not given

Container metadata (environment variables or labels; labels win, SERVICE_<port>_<KEY> beats SERVICE_<KEY>):
  SERVICE_NAME, SERVICE_ID, SERVICE_TAGS, SERVICE_IGNORE, SERVICE_WEIGHT and any other SERVICE_<KEY>
  (becomes Consul Meta "<key>"). Checks: SERVICE_CHECK_HTTP=/path, _HTTPS=/path, _TCP=true,
  _GRPC=true|<service>, _TTL=30s, _SCRIPT=<cmd>, _CMD=<cmd>, _DOCKER=<cmd>, with _INTERVAL, _TIMEOUT,
  _INITIAL_STATUS, _DEREGISTER_AFTER, _METHOD, _TLS_SKIP_VERIFY; more checks as SERVICE_CHECK_<n>_<KEY>.
  Labels registrator.ip=<addr> and registrator.network=<docker network> override the address.
`;
}
