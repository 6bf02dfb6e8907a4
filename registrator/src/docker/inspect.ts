// Bounded, abortable reads of container state.
import type Docker from 'dockerode';
import { withTimeout } from '../../../common/backoff.js';

export class DockerCallError extends Error {
  readonly code: 'ERR_DOCKER_UNAVAILABLE';
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'DockerCallError';
    this.code = 'ERR_DOCKER_UNAVAILABLE';
  }
}

/** The container's inspect data, or undefined when it no longer exists (404). */
export async function inspectContainer(
  docker: Docker,
  id: string,
  opts: { signal: AbortSignal; timeoutMs: number },
): Promise<Docker.ContainerInspectInfo | undefined> {
  try {
    return await docker.getContainer(id).inspect({ abortSignal: withTimeout(opts.signal, opts.timeoutMs) } as object);
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw new DockerCallError(`inspect ${id.slice(0, 12)}: ${(err as Error).message}`, err);
  }
}

/** IDs of running (and paused) containers. */
export async function listContainerIds(docker: Docker, opts: { signal: AbortSignal; timeoutMs: number }): Promise<string[]> {
  try {
    const list = await docker.listContainers({ all: false, abortSignal: withTimeout(opts.signal, opts.timeoutMs) } as object);
    return list.map((c) => c.Id);
  } catch (err) {
    throw new DockerCallError(`list containers: ${(err as Error).message}`, err);
  }
}

/** Docker's answer to /_ping (the engine is reachable). */
export async function pingDocker(docker: Docker, opts: { signal: AbortSignal; timeoutMs: number }): Promise<void> {
  try {
    await (docker.ping as unknown as (o: object) => Promise<unknown>).call(docker, { abortSignal: withTimeout(opts.signal, opts.timeoutMs) });
  } catch (err) {
    throw new DockerCallError(`ping: ${(err as Error).message}`, err);
  }
}
