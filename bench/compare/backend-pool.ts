// Harness side of the backend process: open loopback backends, watch a port for its first hit.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendReply, BackendRequest } from './backend-messages.js';
import type { GroupProcess, ProcessSet } from './processes.js';

const REQUEST_TIMEOUT_MS = 10_000;

type Pending = (reply: BackendReply) => void;
type RequestBody = { type: 'open'; count: number } | { type: 'watch'; port: number } | { type: 'counts' };

export class BackendPool {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly hitWaiters = new Map<number, (at: number) => void>();

  private constructor(private readonly proc: GroupProcess) {
    proc.child.on('message', (raw: unknown) => {
      const msg = raw as BackendReply;
      if (msg.type === 'hit') {
        const waiter = this.hitWaiters.get(msg.port);
        this.hitWaiters.delete(msg.port);
        waiter?.(msg.at);
        return;
      }
      const done = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      done?.(msg);
    });
  }

  static start(processes: ProcessSet): BackendPool {
    const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), 'backend-process.js');
    return new BackendPool(processes.spawn('backends', process.execPath, [entry], { ipc: true }));
  }

  get pid(): number {
    return this.proc.pid;
  }

  private request(body: RequestBody): Promise<BackendReply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`backend process: no answer to ${body.type} within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.type === 'error') reject(new Error(`backend process: ${reply.message}`));
        else resolve(reply);
      });
      this.proc.child.send({ ...body, id } as BackendRequest);
    });
  }

  async open(count: number): Promise<number[]> {
    const reply = await this.request({ type: 'open', count });
    if (reply.type !== 'opened') throw new Error(`backend process: unexpected ${reply.type}`);
    return reply.ports;
  }

  /**
   * Arms a first-hit watch on port (call before the Consul change). Resolves with the epoch ms of the
   * first request the port serves, or undefined after timeoutMs.
   */
  async watchFirstHit(port: number, timeoutMs: number): Promise<() => Promise<number | undefined>> {
    const hit = new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => {
        this.hitWaiters.delete(port);
        resolve(undefined);
      }, timeoutMs);
      this.hitWaiters.set(port, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
    await this.request({ type: 'watch', port });
    return () => hit;
  }

  async hits(): Promise<Map<number, number>> {
    const reply = await this.request({ type: 'counts' });
    if (reply.type !== 'counts') throw new Error(`backend process: unexpected ${reply.type}`);
    return new Map(Object.entries(reply.hits).map(([k, v]) => [Number(k), v]));
  }
}
