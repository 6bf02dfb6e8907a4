// --tls-cert-dir: the directory is rescanned on every fs.watch event (debounced) and by a slow poll
// (fs.watch misses events on some file systems). A file that is refused keeps its previous good
// certificate; a file that is gone takes its certificate with it.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type pino from 'pino';
import { MAX_PEM_BYTES, type CertEntry } from './certificate.js';
import { pairDirectory, type DirFile } from './dir-pairing.js';

export interface DirSourceOptions {
  readonly dir: string;
  readonly log: pino.Logger;
  readonly onChange: (entries: readonly CertEntry[]) => void;
  readonly now?: () => number;
  readonly debounceMs?: number;
  readonly pollMs?: number;
}

/** At most this many files are looked at. */
const MAX_FILES = 500;

export class DirSource {
  #lastGood = new Map<string, CertEntry>();
  #reported = new Map<string, string>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #poll: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #signature = '';

  constructor(private readonly opts: DirSourceOptions) {}

  /** First scan, then watch. */
  async start(): Promise<void> {
    await this.scan();
    try {
      this.#watcher = watch(this.opts.dir, () => this.#schedule());
      this.#watcher.on('error', (err) => this.opts.log.warn({ err: err.message, dir: this.opts.dir }, 'certificate directory watch failed; polling only'));
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message, dir: this.opts.dir }, 'certificate directory cannot be watched; polling only');
    }
    this.#poll = setInterval(() => this.#schedule(), this.opts.pollMs ?? 2_000);
    this.#poll.unref();
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#poll) clearInterval(this.#poll);
  }

  #schedule(): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.scan();
    }, this.opts.debounceMs ?? 30);
  }

  /** One rescan (serialised: a scan asked for while one runs runs once more after it). */
  scan(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#scanOnce();
        } catch (err) {
          this.opts.log.warn({ err: (err as Error).message, dir: this.opts.dir }, 'certificate directory scan failed; previous certificates kept');
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #scanOnce(): Promise<void> {
    const names = (await readdir(this.opts.dir)).filter((n) => !n.startsWith('.')).sort().slice(0, MAX_FILES);
    const files: DirFile[] = [];
    const present = new Set<string>();
    const sig: string[] = [];
    const tooLarge = new Set<string>();
    for (const name of names) {
      const p = path.join(this.opts.dir, name);
      let st;
      try {
        st = await stat(p);
      } catch {
        continue; // removed while we looked
      }
      if (!st.isFile()) continue;
      present.add(p);
      sig.push(`${p}:${st.size}:${st.mtimeMs}:${st.ino}`);
      if (st.size > MAX_PEM_BYTES) {
        tooLarge.add(p);
        this.#report(p, 'ERR_CERT_TOO_LARGE', `${p}: ${st.size} bytes, larger than ${MAX_PEM_BYTES}; previous certificate kept`);
        continue;
      }
      files.push({ path: p, text: await readFile(p, 'utf8').catch(() => '') });
    }
    const signature = sig.join('\n');
    if (signature === this.#signature) return; // nothing changed since the last scan
    const { entries, problems } = pairDirectory(files, (this.opts.now ?? Date.now)());
    const next = new Map<string, CertEntry>();
    for (const e of entries) next.set(e.id.slice('dir:'.length), e);
    const problemPaths = new Set<string>(tooLarge);
    for (const pr of problems) {
      problemPaths.add(pr.path);
      this.#report(pr.path, pr.code, `${pr.message}; previous certificate kept`);
    }
    // refused or oversized files that held a good certificate before keep it
    for (const [p, e] of this.#lastGood) {
      if (next.has(p) || !present.has(p)) continue;
      next.set(p, e);
      if (!problemPaths.has(p)) {
        problemPaths.add(p);
        this.#report(p, 'ERR_CERT_NO_CERTIFICATE', `${p}: held a certificate and now holds none; previous certificate kept (delete the file to remove it)`);
      }
    }
    for (const p of next.keys()) if (!problemPaths.has(p)) this.#reported.delete(p);
    for (const p of [...this.#reported.keys()]) if (!present.has(p)) this.#reported.delete(p);
    this.#lastGood = next;
    this.#signature = signature;
    this.opts.onChange([...next.values()]);
  }

  /** One warning per file and problem (not one per scan). */
  #report(p: string, code: string, message: string): void {
    if (this.#reported.get(p) === code) return;
    this.#reported.set(p, code);
    this.opts.log.warn({ file: p, code }, message);
  }
}
