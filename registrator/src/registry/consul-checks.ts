// Pure: CheckSpec -> the consul client's check options (which it turns into Consul's Check JSON:
// HTTP/TCP/GRPC/Args/DockerContainerID/TTL, Interval, Timeout, Status, DeregisterCriticalServiceAfter).
import type { CheckOptions } from 'consul/lib/agent/check.js';
import type { CheckSpec, ServiceRecord } from '../mapping/types.js';

/**
 * Check IDs are set explicitly, the way Consul names them itself ("service:<id>" for a single check,
 * "service:<id>:<n>" for several), so the TTL refresher can address them after a restart.
 */
export function consulCheckId(serviceId: string, index: number, count: number): string {
  return count === 1 ? `service:${serviceId}` : `service:${serviceId}:${index + 1}`;
}

const SHELL = ['/bin/sh', '-c'];

export function consulCheckOptions(record: ServiceRecord, check: CheckSpec, index: number): CheckOptions {
  const opts: Record<string, unknown> = {
    checkid: consulCheckId(record.id, index, record.checks.length),
    name: `Service '${record.name}' ${check.kind} check`,
  };
  switch (check.kind) {
    case 'http':
    case 'https':
      opts.http = check.target;
      if (check.method) opts.method = check.method;
      if (check.tlsSkipVerify !== undefined) opts.tlsskipverify = check.tlsSkipVerify;
      break;
    case 'tcp':
      opts.tcp = check.target;
      break;
    case 'grpc':
      opts.grpc = check.target;
      break;
    case 'script':
      opts.args = [...SHELL, check.target ?? ''];
      break;
    case 'docker':
      opts.args = [...SHELL, check.target ?? ''];
      opts.dockercontainerid = record.containerId;
      opts.shell = '/bin/sh';
      break;
    case 'ttl':
      opts.ttl = check.ttl;
      break;
  }
  if (check.kind !== 'ttl') opts.interval = check.interval ?? '10s';
  if (check.timeout && check.kind !== 'ttl') opts.timeout = check.timeout;
  if (check.initialStatus) opts.status = check.initialStatus;
  if (check.deregisterAfter) opts.deregistercriticalserviceafter = check.deregisterAfter;
  return opts as unknown as CheckOptions;
}
