// The picker of an upstream with a traffic policy: panic verdict, then canary group, then the sticky
// server, then the upstream's own algorithm inside the group. Each group has its own algorithm
// picker (its own RR cursor, WRR credit, hash ring, EWMA choice), so every algorithm works inside
// each group and a canary under EWMA gets exactly its share. Rules:
// - an empty group sends everything to the other one; a group with no pickable server too;
// - a sticky cookie is honoured only for a server of the request's group that may be picked, so it
//   never moves a client across groups; otherwise the server is re-picked and the cookie re-set;
// - sticky=header / sticky=ip replace the group's algorithm with a consistent hash on that key;
// - in panic, health is ignored inside both groups (panic.ts).
// The request's canary draw lives on the request (canaryBucket) so a retry stays in its group.
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';
import { BUCKETS, bucketFromCookie, CANARY, compileCanary, drawBucket, drawBucketIn, forcedGroup, groupOfBucket, STABLE, type CanaryRule, type Group } from './canary.js';
import { cookieValue } from './chash.js';
import { PanicState, panicPeers } from './panic.js';
import type { PeerState, Picker, PickerEnv, PickRequest } from './types.js';
import { cookieAttributes, opaqueServerId, setCookieText } from './sticky.js';
import { pickable } from './tiers.js';

type AlgorithmFactory = (upstream: UpstreamSpec, peers: PeerState, env: PickerEnv) => Picker;

class GroupPickers {
  private panicPicker: Picker | undefined;
  readonly picker: Picker;

  constructor(readonly servers: readonly ServerSpec[], private readonly spec: UpstreamSpec, private readonly env: PickerEnv,
    private readonly make: AlgorithmFactory, peers: PeerState, private readonly permissive: PeerState) {
    this.picker = make(spec, peers, env);
  }

  get(panicking: boolean): Picker {
    if (!panicking) return this.picker;
    this.panicPicker ??= this.make(this.spec, this.permissive, this.env);
    return this.panicPicker;
  }
}

interface StickyEntry {
  readonly server: ServerSpec;
  readonly group: Group;
}

export class PolicyPicker implements Picker {
  private readonly groups: readonly [GroupPickers, GroupPickers | undefined];
  private readonly rule: CanaryRule | undefined;
  private readonly panicState: PanicState | undefined;
  private readonly permissive: PeerState;
  private readonly stickyCookie: string | undefined;
  private readonly byOpaque = new Map<string, StickyEntry>();
  private readonly opaqueOf = new Map<string, string>();
  private readonly attributes: string;

  constructor(upstream: UpstreamSpec, private readonly peers: PeerState, private readonly env: PickerEnv, make: AlgorithmFactory) {
    const policy = upstream.policy ?? {};
    this.permissive = panicPeers(peers);
    const sticky = policy.sticky;
    let inner: UpstreamSpec = { ...upstream, policy: undefined };
    if (sticky?.mode === 'header') inner = { ...inner, algorithm: 'chash', hashKey: { source: 'header', name: sticky.name } };
    else if (sticky?.mode === 'ip') inner = { ...inner, algorithm: 'chash', hashKey: { source: 'ip' } };
    this.rule = policy.canary ? compileCanary(policy.canary) : undefined;
    const group = (servers: readonly ServerSpec[]) => new GroupPickers(servers, { ...inner, servers }, env, make, peers, this.permissive);
    if (this.rule) {
      const stable = upstream.servers.filter((s) => s.canary !== true);
      const canary = upstream.servers.filter((s) => s.canary === true);
      this.groups = [group(stable), group(canary)];
    } else {
      this.groups = [group(upstream.servers), undefined];
    }
    const threshold = policy.panicThresholdPercent ?? 0;
    this.panicState = threshold > 0 ? new PanicState(upstream.name, upstream.servers, threshold, env.onPanic) : undefined;
    this.attributes = cookieAttributes(sticky);
    if (sticky?.mode === 'cookie') {
      this.stickyCookie = sticky.name;
      const secret = env.stickySecret ?? '';
      for (const s of upstream.servers) {
        const id = opaqueServerId(secret, upstream.name, s.id);
        this.byOpaque.set(id, { server: s, group: s.canary === true && this.rule ? CANARY : STABLE });
        this.opaqueOf.set(s.id, id);
      }
    }
  }

  get panic(): { panicking: boolean; entered: number; picks: number } | undefined {
    const p = this.panicState;
    return p === undefined ? undefined : { panicking: p.panicking, entered: p.entered, picks: p.picks };
  }

  pick(req: PickRequest, exclude: ReadonlySet<string>): ServerSpec | undefined {
    const now = this.env.now();
    const panicking = this.panicState !== undefined && this.panicState.check(this.peers, now);
    const sticky = this.stickyCookie === undefined ? undefined : this.byOpaque.get(cookieValue(req.headers.cookie, this.stickyCookie) ?? '');
    let g: Group = STABLE;
    const rule = this.rule;
    if (rule !== undefined) g = this.groupOf(rule, req, sticky);
    let group = this.groups[g];
    if (group === undefined || group.servers.length === 0) {
      g = g === STABLE ? CANARY : STABLE;
      group = this.groups[g];
      if (group === undefined) return undefined;
    }
    if (sticky !== undefined && sticky.group === g && pickable(sticky.server, panicking ? this.permissive : this.peers, exclude, now)) {
      return sticky.server;
    }
    const chosen = group.get(panicking).pick(req, exclude);
    if (chosen !== undefined) return chosen;
    // nothing pickable in the request's group: the other group serves rather than a 502
    const other = this.groups[g === STABLE ? CANARY : STABLE];
    return other === undefined || other.servers.length === 0 ? undefined : other.get(panicking).pick(req, exclude);
  }

  private groupOf(rule: CanaryRule, req: PickRequest, sticky: StickyEntry | undefined): Group {
    const forced = forcedGroup(rule, req);
    if (forced !== -1) return forced;
    if (rule.cut === 0) return STABLE;
    if (rule.cut === BUCKETS) return CANARY;
    const carried = bucketFromCookie(rule, req);
    if (carried >= 0) return groupOfBucket(rule, carried);
    const drawn = req.canaryBucket;
    if (drawn !== undefined && drawn >= 0) return groupOfBucket(rule, drawn);
    // a client without a draw but with a sticky server keeps that server's group
    const bucket = sticky !== undefined ? drawBucketIn(rule, sticky.group, this.env.random) : drawBucket(this.env.random);
    req.canaryBucket = bucket;
    return groupOfBucket(rule, bucket);
  }

  responseCookies(req: PickRequest, server: ServerSpec): string[] | undefined {
    let out: string[] | undefined;
    const bucket = req.canaryBucket;
    if (this.rule !== undefined && bucket !== undefined && bucket >= 0) {
      out = [setCookieText(this.rule.policy.bucketCookie, String(bucket), this.attributes)];
    }
    if (this.stickyCookie !== undefined) {
      const id = this.opaqueOf.get(server.id);
      if (id !== undefined && cookieValue(req.headers.cookie, this.stickyCookie) !== id) {
        (out ??= []).push(setCookieText(this.stickyCookie, id, this.attributes));
      }
    }
    return out;
  }
}

/** true when the upstream needs the policy picker (anything in its policy that changes picks). */
export function hasPickPolicy(upstream: UpstreamSpec): boolean {
  const p = upstream.policy;
  return p !== undefined && (p.canary !== undefined || p.sticky !== undefined || (p.panicThresholdPercent ?? 0) > 0);
}
