// The exchange's one call into the traffic policy when it writes a response head: the sticky and
// canary cookies the picker asks for, appended to the flat header list.
import type { ServerSpec } from '../routing/types.js';
import type { Picker, PickRequest } from './types.js';

export function appendPolicyCookies(headers: string[], picker: Picker, req: PickRequest, server: ServerSpec): void {
  const cookies = picker.responseCookies?.(req, server);
  if (cookies === undefined) return;
  for (const c of cookies) headers.push('set-cookie', c);
}
