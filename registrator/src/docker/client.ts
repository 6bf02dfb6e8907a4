// Dockerode construction from a DOCKER_HOST-style URI: unix:///path, tcp://host:port, http(s)://host:port.
import Docker from 'dockerode';

export class DockerHostError extends Error {
  readonly code = 'ERR_DOCKER_HOST';
  constructor(message: string) {
    super(message);
    this.name = 'DockerHostError';
  }
}

export function dockerFromHost(dockerHost: string): Docker {
  if (dockerHost.startsWith('unix://')) return new Docker({ socketPath: dockerHost.slice('unix://'.length) });
  if (dockerHost.startsWith('/')) return new Docker({ socketPath: dockerHost });
  const m = /^(tcp|http|https):\/\/([^/:]+|\[[^\]]+\])(?::(\d+))?\/?$/.exec(dockerHost);
  if (!m) throw new DockerHostError(`unsupported docker host "${dockerHost}" (want unix:///path or tcp://host:port)`);
  const protocol = m[1] === 'https' ? 'https' : 'http';
  return new Docker({ protocol, host: m[2].replace(/^\[|\]$/g, ''), port: Number(m[3] ?? (protocol === 'https' ? 2376 : 2375)) });
}
