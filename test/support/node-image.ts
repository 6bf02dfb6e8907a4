// A node base image without a registry: `docker import` of a root filesystem holding the host's node
// binary (and `cat`), the shared libraries `ldd` lists for them, a minimal /etc (root and node users, nsswitch) and a
// world-writable /tmp. It stands in for node:20-bookworm-slim in the end-to-end test: same user names, node
// on the PATH at /usr/local/bin/node, no shell and no npm.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCommand } from './run-command.js';

export class NodeImageError extends Error {
  readonly code = 'ERR_NODE_IMAGE_LDD' as const;
  constructor(message: string) {
    super(message);
    this.name = 'NodeImageError';
  }
}

/** Absolute library paths from `ldd` output (pure). The vDSO has no file and is skipped. */
export function parseLddOutput(text: string): string[] {
  const libs = new Set<string>();
  for (const line of text.split('\n')) {
    const arrow = /=>\s*(\/\S+)\s*\(/.exec(line);
    if (arrow) { libs.add(arrow[1]); continue; }
    const bare = /^\s*(\/\S+)\s*\(/.exec(line);
    if (bare) libs.add(bare[1]);
    if (/=>\s*not found/.test(line)) throw new NodeImageError(`ldd: ${line.trim()}`);
  }
  return [...libs].sort();
}

const PASSWD = 'root:x:0:0:root:/root:/sbin/nologin\nnode:x:1000:1000::/home/node:/sbin/nologin\n';
const GROUP = 'root:x:0:\nnode:x:1000:\n';
const NSSWITCH = 'passwd: files\ngroup: files\nhosts: files dns\n';

export interface NodeImageOptions {
  /** image name:tag to create */
  readonly tag: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
  /** default: the node running this process */
  readonly nodeBinary?: string;
  readonly timeoutMs?: number;
}

/** Build and `docker import` the stand-in node image; returns the image id. */
export async function importNodeImage(opts: NodeImageOptions): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const nodeBinary = await fs.realpath(opts.nodeBinary ?? process.execPath);
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'cbtest-node-image-'));
  try {
    const root = path.join(work, 'rootfs');
    const ldd = await runCommand('ldd', [nodeBinary], { signal: opts.signal, timeoutMs: 10_000 });
    const libs = parseLddOutput(ldd.stdout);
    const place = async (source: string, target: string, mode?: number) => {
      const dest = path.join(root, target);
      await fs.mkdir(path.dirname(dest), { recursive: true });
      await fs.copyFile(source, dest); // follows symlinks: the real file lands under the linked name
      if (mode !== undefined) await fs.chmod(dest, mode);
    };
    await place(nodeBinary, 'usr/local/bin/node', 0o755);
    // `cat`, as the official image has: the README reads the balancer's admin token with
    // `docker-compose exec -T balancer cat /app/run/admin-token`
    const cat = await fs.realpath('/bin/cat');
    const catLibs = parseLddOutput((await runCommand('ldd', [cat], { signal: opts.signal, timeoutMs: 10_000 })).stdout);
    await place(cat, 'bin/cat', 0o755);
    for (const lib of new Set([...libs, ...catLibs])) await place(lib, lib.slice(1), 0o755);
    const write = async (target: string, text: string) => {
      const dest = path.join(root, target);
      await fs.mkdir(path.dirname(dest), { recursive: true });
      await fs.writeFile(dest, text, { mode: 0o644 });
    };
    await write('etc/passwd', PASSWD);
    await write('etc/group', GROUP);
    await write('etc/nsswitch.conf', NSSWITCH);
    for (const dir of ['tmp', 'root', 'home/node']) await fs.mkdir(path.join(root, dir), { recursive: true });
    await fs.chmod(path.join(root, 'tmp'), 0o1777);
    await fs.chmod(path.join(root, 'root'), 0o700);
    const tarball = path.join(work, 'rootfs.tar');
    await runCommand('tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarball, '.'],
      { signal: opts.signal, timeoutMs });
    // home/node belongs to the node user, as in the official image (tar has no per-file owner flag here,
    // and nothing in the demo writes there, so root ownership is harmless).
    const changes = [
      'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin',
      ...Object.entries(opts.labels).map(([k, v]) => `LABEL ${k}=${v}`),
      'CMD ["node"]',
    ];
    const imported = await runCommand('docker', ['import', ...changes.flatMap((c) => ['--change', c]), '-', opts.tag],
      { signal: opts.signal, timeoutMs, stdinFile: tarball });
    return imported.stdout.trim();
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
