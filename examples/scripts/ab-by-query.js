// A/B by query parameter: ?variant=b goes to the upstream "web-b", anything else stays where it was routed.
export function onRequest(req) {
  if (req.query.variant === 'b') return { upstream: 'web-b', headers: { 'x-variant': 'b' } };
}
