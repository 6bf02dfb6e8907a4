// The few Consul agent calls the churn driver makes, each with a timeout.
const CALL_TIMEOUT_MS = 3000;

export class ConsulAgentError extends Error {
  readonly code = 'ERR_CONSUL_CALL';
  constructor(message: string) {
    super(message);
  }
}

export class ConsulAgent {
  constructor(private readonly baseUrl: string) {}

  private async call(method: 'GET' | 'PUT', path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
    const text = await res.text();
    if (res.status !== 200) throw new ConsulAgentError(`${method} ${path} -> ${res.status}: ${text.slice(0, 200)}`);
    return text ? JSON.parse(text) : undefined;
  }

  register(service: string, id: string, port: number): Promise<unknown> {
    return this.call('PUT', '/v1/agent/service/register', { ID: id, Name: service, Address: '127.0.0.1', Port: port });
  }

  deregister(id: string): Promise<unknown> {
    return this.call('PUT', `/v1/agent/service/deregister/${encodeURIComponent(id)}`);
  }

  /** agent service IDs registered under this service name */
  async instanceIds(service: string): Promise<string[]> {
    const all = (await this.call('GET', '/v1/agent/services')) as Record<string, { Service: string }>;
    return Object.entries(all).filter(([, s]) => s.Service === service).map(([id]) => id);
  }

  async deregisterAll(service: string): Promise<void> {
    for (const id of await this.instanceIds(service)) await this.deregister(id);
  }
}
