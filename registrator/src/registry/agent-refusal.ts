// Pure: which answers of the Consul agent to a registration are final, and which checks they concern.
// Facts from Consul's source: agent_endpoint.go AgentRegisterService answers its own validation with a
// 400 ("Invalid check: ...", "Invalid Service Meta: ...", "Validation failed: ..."); agent.go's
// AddService errors reach the client as a 500 with the error text as the body, among them the refusals
// that no retry can change while the agent's configuration stays the same:
//   "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true"
//   "Check is not valid: <reason>", "CheckID missing", "ServiceID missing"
import type { CheckKind, ServiceRecord } from '../mapping/types.js';
import { consulCheckId } from './consul-checks.js';

const SCRIPTS_DISABLED = /^Scripts are disabled on this agent/;
const FINAL_500 = [SCRIPTS_DISABLED, /^Check is not valid: /, /^CheckID missing/, /^ServiceID missing/];

/** Is a 500 from agent.service.register with this body a refusal for good (not a failure for now)? */
export function isFinalRegisterRefusal(status: number, agentMessage: string): boolean {
  return status === 500 && FINAL_500.some((re) => re.test(agentMessage.trim()));
}

export interface RefusedCheck {
  /** the check ID the registrator gave it (service:<id> or service:<id>:<n>) */
  readonly id: string;
  readonly kind: CheckKind;
  readonly target?: string;
}

/**
 * The checks of `record` the agent's message is about. Script checks disabled: the script and docker
 * checks. Any other check refusal: Consul does not say which check, so every check of the record.
 * A refusal that names no check (meta, name, address): none.
 */
export function refusedChecks(record: ServiceRecord, agentMessage: string): RefusedCheck[] {
  const all = record.checks.map((c, i) => ({ id: consulCheckId(record.id, i, record.checks.length), kind: c.kind, ...(c.target !== undefined ? { target: c.target } : {}) }));
  if (SCRIPTS_DISABLED.test(agentMessage.trim())) return all.filter((c) => c.kind === 'script' || c.kind === 'docker');
  if (/check/i.test(agentMessage)) return all;
  return [];
}
