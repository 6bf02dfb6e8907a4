// Refuse DELETE for one host (Slardar's example): PUT /scripts/refuse-delete?services=*
export function onRequest(req) {
  if (req.method === 'DELETE' && req.host === 'shop.example') {
    return { respond: { status: 403, headers: { 'content-type': 'text/plain' }, body: 'DELETE is not allowed here\n' } };
  }
}
