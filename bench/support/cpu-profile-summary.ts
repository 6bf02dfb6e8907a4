// Reads a V8 .cpuprofile (node --cpu-prof) and prints where the busy time went: self time per
// function and inclusive time per function, as shares of the non-idle samples (a process on a shared
// machine is idle or descheduled much of a run: shares of the busy part compare across runs).
//   node dist/bench/support/cpu-profile-summary.js <file.cpuprofile> [top=40]
import { readFileSync } from 'node:fs';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[] }

const [file, topArg] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const top = Number(topArg ?? 40);
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n: ProfileNode): string => {
  const url = n.callFrame.url.replace(/^file:\/\/.*?\/dist\//, '').replace(/^node:internal\//, 'node:');
  return `${n.callFrame.functionName || '(anonymous)'} ${url}${url === '' ? '' : `:${n.callFrame.lineNumber + 1}`}`;
};
const hits = new Map<number, number>();
for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let busy = 0;
for (const [id, count] of hits) {
  const node = byId.get(id) as ProfileNode;
  if (node.callFrame.functionName === '(idle)') continue;
  busy += count;
  self.set(label(node), (self.get(label(node)) ?? 0) + count);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur) as ProfileNode);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + count);
  }
}
const share = (v: number): string => `${((100 * v) / Math.max(1, busy)).toFixed(1).padStart(5)} %`;
console.log(`# ${file}: ${profile.samples.length} samples, ${busy} busy (not idle)`);
console.log('# self time, share of busy samples');
for (const [l, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(share(v), l);
console.log('# inclusive time, share of busy samples');
for (const [l, v] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(share(v), l);
