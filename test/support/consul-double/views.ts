// JSON shapes of Consul's answers, with its field names (agent casing differs from catalog casing).
import { formatGoDuration } from './durations.js';
import type { CheckEntry, ConsulState, KvEntry, NodeInfo, ServiceEntry } from './state.js';

export function nodeView(n: NodeInfo) {
  return {
    ID: n.id,
    Node: n.name,
    Address: n.address,
    Datacenter: n.datacenter,
    TaggedAddresses: { ...n.taggedAddresses },
    Meta: { ...n.meta },
    CreateIndex: n.createIndex,
    ModifyIndex: n.modifyIndex,
  };
}

export function agentServiceView(state: ConsulState, s: ServiceEntry) {
  const d = s.def;
  return {
    ID: d.id,
    Service: d.name,
    Tags: [...d.tags],
    Meta: { ...d.meta },
    Port: d.port,
    Address: d.address,
    ...(Object.keys(d.taggedAddresses).length > 0 ? { TaggedAddresses: d.taggedAddresses } : {}),
    Weights: { ...d.weights },
    EnableTagOverride: d.enableTagOverride,
    Datacenter: state.node.datacenter,
  };
}

export function healthServiceView(s: ServiceEntry) {
  const d = s.def;
  return {
    Kind: d.kind ?? '',
    ID: d.id,
    Service: d.name,
    Tags: [...d.tags],
    Address: d.address,
    TaggedAddresses: Object.keys(d.taggedAddresses).length > 0 ? d.taggedAddresses : undefined,
    Meta: { ...d.meta },
    Port: d.port,
    Weights: { ...d.weights },
    EnableTagOverride: d.enableTagOverride,
    Proxy: { Mode: '', MeshGateway: {}, Expose: {} },
    Connect: {},
    PeerName: '',
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
  };
}

export function catalogServiceView(node: NodeInfo, s: ServiceEntry) {
  const n = nodeView(node);
  const d = s.def;
  return {
    ID: n.ID,
    Node: n.Node,
    Address: n.Address,
    Datacenter: n.Datacenter,
    TaggedAddresses: n.TaggedAddresses,
    NodeMeta: n.Meta,
    ServiceKind: s.def.kind ?? '',
    ServiceID: d.id,
    ServiceName: d.name,
    ServiceTags: [...d.tags],
    ServiceAddress: d.address,
    ServiceTaggedAddresses: Object.keys(d.taggedAddresses).length > 0 ? d.taggedAddresses : undefined,
    ServiceWeights: { ...d.weights },
    ServiceMeta: { ...d.meta },
    ServicePort: d.port,
    ServiceEnableTagOverride: d.enableTagOverride,
    ServiceProxy: { Mode: '', MeshGateway: {}, Expose: {} },
    ServiceConnect: {},
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
  };
}

/**
 * Catalog/health casing of a check (agent/checks uses the same names, with the agent's own output).
 * Definition is what the catalog holds: {} for agent-registered checks (agent.go never fills it).
 */
export function checkView(c: CheckEntry, agent = false) {
  return {
    Node: c.node,
    CheckID: c.def.checkId,
    Name: c.def.name,
    Status: c.status,
    Notes: c.def.notes,
    Output: agent ? c.agentOutput : c.output,
    ServiceID: c.def.serviceId,
    ServiceName: c.serviceName,
    ServiceTags: [...c.serviceTags],
    Type: c.def.type,
    Interval: c.def.intervalMs !== undefined ? formatGoDuration(c.def.intervalMs) : '',
    Timeout: c.def.timeoutMs !== undefined ? formatGoDuration(c.def.timeoutMs) : '',
    ExposedPort: 0,
    Definition: { ...c.definition },
    CreateIndex: c.createIndex,
    ModifyIndex: c.modifyIndex,
  };
}

export function kvView(e: KvEntry) {
  return {
    LockIndex: 0,
    Key: e.key,
    Flags: e.flags,
    Value: e.value === null || e.value.length === 0 ? null : e.value.toString('base64'),
    CreateIndex: e.createIndex,
    ModifyIndex: e.modifyIndex,
  };
}
