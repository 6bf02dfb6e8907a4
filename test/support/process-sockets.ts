// Which processes hold TCP connections to a port (Linux /proc): a process's socket inodes from its
// fd table, matched against /proc/net/tcp{,6} rows by remote port. For tests that must tell which
// process of the balancer (primary or a worker) talks to the agent, which no gate in front of it can.
import { readdir, readFile, readlink } from 'node:fs/promises';

async function socketInodes(pid: number): Promise<Set<string>> {
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return out; // the process is gone
  }
  await Promise.all(fds.map(async (fd) => {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) out.add(m[1]);
  }));
  return out;
}

/** rows of /proc/net/tcp{,6}: remote port and inode (state is not looked at: any row counts) */
async function tcpRows(): Promise<{ remotePort: number; inode: string }[]> {
  const rows: { remotePort: number; inode: string }[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      rows.push({ remotePort: parseInt(f[2].split(':')[1], 16), inode: f[9] });
    }
  }
  return rows;
}

/** Connections the given processes hold to `port` right now. */
export async function connectionsTo(pids: readonly number[], port: number): Promise<number> {
  const inodes = new Set<string>();
  for (const pid of pids) for (const i of await socketInodes(pid)) inodes.add(i);
  return (await tcpRows()).filter((r) => r.remotePort === port && inodes.has(r.inode)).length;
}

/**
 * Samples connectionsTo every `everyMs` until stop(); stop() resolves to the most seen at once. A
 * keep-alive client holds its idle socket for seconds after a request, so a short interval sees it.
 */
export function sampleConnectionsTo(pids: () => readonly number[], port: number, everyMs = 25): { stop(): Promise<{ max: number; samples: number }> } {
  let max = 0;
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await connectionsTo(pids(), port));
      samples++;
      await new Promise((r) => setTimeout(r, everyMs).unref());
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { max, samples };
    },
  };
}
