// A pure, seeded generator of the writes a real Consul cluster sees, for the randomized follower test:
// instances registered and deregistered (on the agent's node through the agent API, on other nodes
// through the catalog API), an ID re-registered with a new address or port, tag changes, check flaps
// passing/warning/critical, maintenance on and off, a node failing and recovering (its serfHealth), a
// node leaving with instances of many services (one deleteNodeTxn; now and then a host drained as it
// happens in production: a fresh node gets passing instances of many services, the follower sees them,
// then the node leaves alone, so one catalog answer covers only that one index and the service changed
// last, the follower's guess, is one of the node's), a service's last instance leaving, a node
// re-registered with a new address (ensureNodeTxn: the node's and each of its services' indexes move,
// no services-table write, so /v1/catalog/services does not wake, and every instance without a
// Service.Address moves), one /v1/txn moving an instance of one service to another port (its count
// kept) and adding an instance of another service at the same raft index (state/txn.go: one index for
// every op), KV and coordinate writes no catalog answer names, bursts applied at once (inside one blocking answer),
// and quiet points where the harness checks the follower. No I/O: the same seed gives the same ops.
// The generator keeps a model only to make likely-meaningful ops; the harness never checks against it
// (the expected routing set is read from the catalog itself).

export type OpStatus = 'passing' | 'warning' | 'critical';

export type ConsulOp =
  | { readonly kind: 'register'; readonly node: string; readonly nodeAddress: string; readonly id: string; readonly service: string; readonly address: string; readonly port: number; readonly tags: readonly string[]; readonly status: OpStatus; readonly why: 'new' | 'move' | 'retag' }
  | { readonly kind: 'deregister'; readonly node: string; readonly id: string; readonly why: 'one' | 'last-of-service' }
  | { readonly kind: 'check'; readonly node: string; readonly id: string; readonly status: OpStatus }
  | { readonly kind: 'maintenance'; readonly id: string; readonly enable: boolean }
  | { readonly kind: 'node-join'; readonly node: string; readonly address: string }
  | { readonly kind: 'node-fail'; readonly node: string; readonly nodeAddress: string }
  | { readonly kind: 'node-recover'; readonly node: string; readonly nodeAddress: string }
  | { readonly kind: 'node-leave'; readonly node: string }
  | { readonly kind: 'node-readdress'; readonly node: string; readonly address: string }
  | { readonly kind: 'txn'; readonly sets: readonly TxnSet[] }
  | { readonly kind: 'kv'; readonly key: string }
  | { readonly kind: 'coordinate'; readonly node: string }
  | { readonly kind: 'burst'; readonly ops: readonly ConsulOp[] }
  | { readonly kind: 'quiet' };

/** One Service "set" op of a /v1/txn body: the instance as it is after the transaction. */
export interface TxnSet {
  readonly node: string;
  readonly id: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
}

export interface GeneratorOptions {
  /** prefix of every service, node and key (a test scope's tag) */
  readonly prefix: string;
  /** the agent's own node: instances there go through the agent API (maintenance works only there) */
  readonly agentNode: string;
  /** how many writes (ops other than quiet; a burst counts its ops) */
  readonly ops: number;
  readonly services?: number;
  readonly nodes?: number;
  /** a quiet point after every this many writes on average */
  readonly quietEvery?: number;
}

/** mulberry32: small, fast, good enough to pick ops; the seed replays a run. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ModelInstance {
  node: string;
  id: string;
  service: string;
  address: string;
  port: number;
  tags: string[];
  status: OpStatus;
  maintenance: boolean;
}

const TAG_POOL = ['blue', 'green', 'v1', 'v2', 'canary', 'weight=2', 'zone-a'];

/** The op sequence for a seed; ends with a quiet point. */
export function generateOps(seed: number, opts: GeneratorOptions): ConsulOp[] {
  const rnd = seededRandom(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const chance = (p: number) => rnd() < p;
  const serviceNames = Array.from({ length: opts.services ?? 12 }, (_, i) => `${opts.prefix}-s${i}`);
  const nodeNames = Array.from({ length: opts.nodes ?? 5 }, (_, i) => `${opts.prefix}-n${i}`);
  const quietEvery = opts.quietEvery ?? 50;
  const instances = new Map<string, ModelInstance>();
  const nodes = new Map<string, { address: string; alive: boolean }>();
  let nextPort = 20_000;
  let nextId = 0;
  let nodeSerial = 0;
  const key = (node: string, id: string) => `${node}/${id}`;
  const addressFor = (node: string) => (node === opts.agentNode ? '127.0.0.1' : nodes.get(node)?.address ?? '127.0.0.1');
  const freshAddress = () => `127.${1 + int(200)}.${int(250)}.${1 + int(250)}`;
  const randomTags = () => TAG_POOL.filter(() => chance(0.25));
  const status = (): OpStatus => (chance(0.7) ? 'passing' : chance(0.5) ? 'warning' : 'critical');
  const live = () => [...instances.values()];

  const join = (): ConsulOp => {
    const down = nodeNames.filter((n) => !nodes.has(n));
    const node = down.length > 0 ? pick(down) : `${opts.prefix}-n${nodeNames.length + nodeSerial++}`;
    if (!nodeNames.includes(node)) nodeNames.push(node);
    const address = freshAddress();
    nodes.set(node, { address, alive: true });
    return { kind: 'node-join', node, address };
  };
  const register = (why: 'new' | 'move' | 'retag', existing?: ModelInstance): ConsulOp => {
    let inst: ModelInstance;
    if (existing) {
      inst = { ...existing };
      if (why === 'move') {
        if (chance(0.5)) inst.port = nextPort++;
        else inst.address = chance(0.2) ? '' : freshAddress();
      } else inst.tags = randomTags();
    } else {
      const candidates = [opts.agentNode, ...[...nodes.keys()]];
      const node = pick(candidates);
      inst = {
        node, id: `${opts.prefix}-i${nextId++}`, service: pick(serviceNames),
        // an empty Service.Address means the node's address (a registrator on the node, -internal off)
        address: chance(0.15) ? '' : freshAddress(), port: nextPort++, tags: randomTags(), status: status(), maintenance: false,
      };
    }
    // address:port unique per service: a duplicate is one server in the table, which is its own test
    if (!existing || why === 'move') inst.port = nextPort++;
    instances.set(key(inst.node, inst.id), inst);
    return { kind: 'register', node: inst.node, nodeAddress: addressFor(inst.node), id: inst.id, service: inst.service, address: inst.address, port: inst.port, tags: [...inst.tags], status: inst.status, why };
  };

  const one = (): ConsulOp => {
    const all = live();
    const r = rnd();
    if (nodes.size < 2 || r < 0.04) return join();
    if (all.length < 6 || r < 0.3) return register('new');
    if (r < 0.4) return register('move', pick(all));
    if (r < 0.47) return register('retag', pick(all));
    if (r < 0.57) {
      // bias to a service's last instance now and then: the extinction index
      const counts = new Map<string, number>();
      for (const i of all) counts.set(i.service, (counts.get(i.service) ?? 0) + 1);
      const lonely = all.filter((i) => counts.get(i.service) === 1);
      const inst = lonely.length > 0 && chance(0.4) ? pick(lonely) : pick(all);
      instances.delete(key(inst.node, inst.id));
      return { kind: 'deregister', node: inst.node, id: inst.id, why: counts.get(inst.service) === 1 ? 'last-of-service' : 'one' };
    }
    if (r < 0.72) {
      const inst = pick(all);
      inst.status = inst.status === 'passing' ? pick(['warning', 'critical'] as const) : chance(0.7) ? 'passing' : pick(['warning', 'critical'] as const);
      return { kind: 'check', node: inst.node, id: inst.id, status: inst.status };
    }
    if (r < 0.78) {
      const mine = all.filter((i) => i.node === opts.agentNode);
      if (mine.length === 0) return register('new');
      const inst = pick(mine);
      inst.maintenance = !inst.maintenance;
      return { kind: 'maintenance', id: inst.id, enable: inst.maintenance };
    }
    if (r < 0.83) {
      const names = [...nodes.keys()];
      const node = pick(names);
      const n = nodes.get(node)!;
      n.alive = !n.alive;
      return n.alive ? { kind: 'node-recover', node, nodeAddress: n.address } : { kind: 'node-fail', node, nodeAddress: n.address };
    }
    if (r < 0.87) {
      // leave the node holding the most instances: many services at one index
      const byNode = new Map<string, number>();
      for (const i of all) if (i.node !== opts.agentNode) byNode.set(i.node, (byNode.get(i.node) ?? 0) + 1);
      const ranked = [...byNode].sort((a, b) => b[1] - a[1]);
      if (ranked.length === 0) return join();
      const node = ranked[0][0];
      nodes.delete(node);
      for (const [k, i] of instances) if (i.node === node) instances.delete(k);
      return { kind: 'node-leave', node };
    }
    if (r < 0.92) return { kind: 'kv', key: `${opts.prefix}/noise/${int(20)}` };
    if (r < 0.95) return txn(all);
    if (r < 0.97) return readdress();
    return { kind: 'coordinate', node: pick([opts.agentNode, ...nodes.keys()]) };
  };

  /** A catalog node (never the agent's: its agent would sync its own address back) gets a new address. */
  const readdress = (chosen?: string): ConsulOp => {
    const names = [...nodes.keys()];
    if (names.length === 0) return join();
    const node = chosen ?? pick(names);
    const address = freshAddress();
    nodes.get(node)!.address = address;
    return { kind: 'node-readdress', node, address };
  };

  /**
   * One transaction, one index: an instance on a catalog node moves to another port (its service keeps
   * its count) and a new instance of another service appears on a catalog node (no check: it passes).
   * A read of the second names the index by its instance; only the first's own read shows the move.
   */
  const txn = (all: readonly ModelInstance[]): ConsulOp => {
    const movable = all.filter((i) => i.node !== opts.agentNode);
    if (movable.length === 0 || nodes.size === 0) return register('new');
    const moved = { ...pick(movable), port: nextPort++ };
    instances.set(key(moved.node, moved.id), moved);
    const others = serviceNames.filter((n) => n !== moved.service);
    const added: ModelInstance = {
      node: pick([...nodes.keys()]), id: `${opts.prefix}-i${nextId++}`, service: pick(others.length > 0 ? others : serviceNames),
      address: chance(0.2) ? '' : freshAddress(), port: nextPort++, tags: randomTags(), status: 'passing', maintenance: false,
    };
    instances.set(key(added.node, added.id), added);
    const set = (i: ModelInstance): TxnSet => ({ node: i.node, id: i.id, service: i.service, address: i.address, port: i.port, tags: [...i.tags] });
    return { kind: 'txn', sets: [set(moved), set(added)] };
  };

  /**
   * A drained host: join, passing instances of many services on it (all the node's instances pass, so
   * the checks signal does not move when they go), a quiet point, the leave alone, a quiet point.
   */
  const drain = (): ConsulOp[] => {
    const joined = join() as Extract<ConsulOp, { kind: 'node-join' }>;
    const seq: ConsulOp[] = [joined];
    const many = serviceNames.filter(() => chance(0.7));
    for (const service of many.length >= 2 ? many : serviceNames) {
      const inst: ModelInstance = { node: joined.node, id: `${opts.prefix}-i${nextId++}`, service, address: freshAddress(), port: nextPort++, tags: [], status: 'passing', maintenance: false };
      instances.set(key(inst.node, inst.id), inst);
      seq.push({ kind: 'register', node: inst.node, nodeAddress: joined.address, id: inst.id, service, address: inst.address, port: inst.port, tags: [], status: 'passing', why: 'new' });
    }
    seq.push({ kind: 'quiet' });
    nodes.delete(joined.node);
    for (const [k, i] of instances) if (i.node === joined.node) instances.delete(k);
    seq.push({ kind: 'node-leave', node: joined.node }, { kind: 'quiet' });
    return seq;
  };

  /**
   * Alone between quiet points, so that no other op's read (or a rescan it causes) covers it: an
   * instance using its node's address, seen, then the node re-registered with a new address; or a
   * registration and right after it a txn (two catalog answers in quick succession, so the txn's
   * window likely holds no KV write: only indexes reads name).
   */
  const lone = (): ConsulOp[] => {
    const seq: ConsulOp[] = [{ kind: 'quiet' }];
    if (chance(0.5)) {
      const node = pick([...nodes.keys()]);
      const inst: ModelInstance = { node, id: `${opts.prefix}-i${nextId++}`, service: pick(serviceNames), address: '', port: nextPort++, tags: [], status: 'passing', maintenance: false };
      instances.set(key(node, inst.id), inst);
      seq.push({ kind: 'register', node, nodeAddress: addressFor(node), id: inst.id, service: inst.service, address: '', port: inst.port, tags: [], status: 'passing', why: 'new' });
      seq.push({ kind: 'quiet' }, readdress(node), { kind: 'quiet' });
    } else {
      seq.push(register('new'));
      seq.push(txn(live()), { kind: 'quiet' });
    }
    return seq;
  };

  const out: ConsulOp[] = [];
  let writes = 0;
  let sinceQuiet = 0;
  while (writes < opts.ops) {
    if (nodes.size >= 2 && writes + serviceNames.length + 2 < opts.ops && chance(0.012)) {
      const seq = drain();
      out.push(...seq);
      writes += seq.filter((o) => o.kind !== 'quiet').length;
      sinceQuiet = 0;
      continue;
    }
    if (nodes.size >= 1 && writes + 3 < opts.ops && chance(0.015)) {
      const seq = lone();
      out.push(...seq);
      writes += seq.filter((o) => o.kind !== 'quiet').length;
      sinceQuiet = 0;
      continue;
    }
    let op: ConsulOp;
    if (chance(0.08)) {
      const n = 2 + int(6);
      const ops = Array.from({ length: n }, one).filter((o) => o.kind !== 'node-join');
      // a join is applied first, outside the burst: the burst's ops may need the node
      op = ops.length > 0 ? { kind: 'burst', ops } : one();
    } else op = one();
    out.push(op);
    const w = op.kind === 'burst' ? op.ops.length : 1;
    writes += w;
    sinceQuiet += w;
    if (sinceQuiet >= quietEvery / 2 && chance(2 / quietEvery)) {
      out.push({ kind: 'quiet' });
      sinceQuiet = 0;
    }
  }
  out.push({ kind: 'quiet' });
  return out;
}

/** One line per op, for a failure's report. */
export function describeOp(op: ConsulOp): string {
  switch (op.kind) {
    case 'register': return `register ${op.node}/${op.id} ${op.service} ${op.address || '(node address)'}:${op.port} [${op.tags.join(',')}] ${op.status} (${op.why})`;
    case 'deregister': return `deregister ${op.node}/${op.id} (${op.why})`;
    case 'check': return `check ${op.node}/${op.id} -> ${op.status}`;
    case 'maintenance': return `maintenance ${op.id} ${op.enable ? 'on' : 'off'}`;
    case 'node-join': return `node-join ${op.node} ${op.address}`;
    case 'node-fail': return `node-fail ${op.node}`;
    case 'node-recover': return `node-recover ${op.node}`;
    case 'node-leave': return `node-leave ${op.node}`;
    case 'node-readdress': return `node-readdress ${op.node} ${op.address}`;
    case 'txn': return `txn [${op.sets.map((x) => `set ${x.node}/${x.id} ${x.service} ${x.address || '(node address)'}:${x.port}`).join('; ')}]`;
    case 'kv': return `kv ${op.key}`;
    case 'coordinate': return `coordinate ${op.node}`;
    case 'burst': return `burst [${op.ops.map(describeOp).join('; ')}]`;
    case 'quiet': return 'quiet';
  }
}

/**
 * Delta debugging (ddmin) over a failing sequence: the smallest sub-sequence found for which
 * `fails` still answers true, within `budget` calls. Any sub-sequence is a valid run: the expected
 * set comes from the catalog, and an op whose target is gone is a no-op on Consul.
 */
export async function shrinkOps(ops: readonly ConsulOp[], fails: (ops: readonly ConsulOp[]) => Promise<boolean>, budget = 30): Promise<ConsulOp[]> {
  // quiet points stay candidates like any op: a drained host fails only with its quiet point between the
  // registrations and the leave (the follower must have seen the instances)
  let current = [...ops];
  let n = 2;
  let calls = 0;
  while (current.length >= 2 && calls < budget) {
    const size = Math.ceil(current.length / n);
    let reduced = false;
    for (let start = 0; start < current.length && calls < budget; start += size) {
      const complement = [...current.slice(0, start), ...current.slice(start + size)];
      calls++;
      if (complement.length > 0 && (await fails(complement))) {
        current = complement;
        n = Math.max(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (!reduced) {
      if (n >= current.length) break;
      n = Math.min(current.length, n * 2);
    }
  }
  return current;
}

/** One container's check metadata at one step: the env entries and what the agent should hold. */
export interface CheckEnvStep {
  readonly env: readonly string[];
  /** how many checks the registration asks for */
  readonly checks: number;
  /** a kind a default agent refuses (script, docker): the registration is refused whole */
  readonly refused: boolean;
}

const ACCEPTED_KINDS = [['TTL', '30s'], ['HTTP', '/'], ['TCP', 'true']] as const;
const REFUSED_KINDS = [['SCRIPT', '/bin/true'], ['DOCKER', '/bin/true']] as const;

/**
 * The registrator's side: a container's checks changing from step to step (added, dropped, renumbered
 * from `service:<id>` to `service:<id>:<n>`, now and then a script or docker check a default agent
 * refuses), as SERVICE_CHECK_<KIND> and numbered SERVICE_CHECK_<n>_<KIND> groups.
 */
export function generateCheckEnvs(seed: number, steps: number, serviceName: string): CheckEnvStep[] {
  const rnd = seededRandom(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  return Array.from({ length: steps }, (_, step) => {
    // at least one refused step in every sequence (the middle one)
    const refused = rnd() < 0.15 || step === Math.floor(steps / 2);
    const count = refused ? 1 + int(3) : int(4);
    const env = [`SERVICE_NAME=${serviceName}`];
    const refusedAt = refused ? int(count) : -1;
    for (let i = 0; i < count; i++) {
      const [kind, value] = i === refusedAt ? REFUSED_KINDS[int(REFUSED_KINDS.length)] : ACCEPTED_KINDS[int(ACCEPTED_KINDS.length)];
      // the first check unnumbered, the next ones as numbered groups
      env.push(i === 0 ? `SERVICE_CHECK_${kind}=${value}` : `SERVICE_CHECK_${i}_${kind}=${value}`);
    }
    return { env, checks: count, refused };
  });
}
