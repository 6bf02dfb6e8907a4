// Add a header to every request going upstream and to every response going back.
export function onRequest(req) {
  return { headers: { 'x-request-script': 'add-header', 'x-client-address': req.clientAddress } };
}

export function onResponse(res) {
  return { headers: { 'x-served-by': 'balancer', 'x-upstream-status': String(res.status) } };
}
