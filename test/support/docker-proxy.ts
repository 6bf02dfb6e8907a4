// A TCP proxy on 127.0.0.1:<ephemeral> in front of the Docker engine's Unix socket, so a test can break
// the registrator's Docker connection (event stream included) and bring it back: a TCP gate whose
// target is the engine's socket.
import { startTcpGate } from './tcp-gate.js';

export interface DockerProxy {
  /** tcp://127.0.0.1:<port>: pass as -docker-host */
  readonly dockerHost: string;
  readonly port: number;
  outage(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

function engineSocketPath(): string {
  const host = process.env.DOCKER_HOST;
  if (host?.startsWith('unix://')) return host.slice('unix://'.length);
  return '/var/run/docker.sock';
}

export async function startDockerProxy(socketPath = engineSocketPath()): Promise<DockerProxy> {
  const gate = await startTcpGate({ path: socketPath });
  return { dockerHost: `tcp://${gate.addr}`, port: gate.port, outage: gate.outage, restore: gate.restore, close: gate.close };
}
