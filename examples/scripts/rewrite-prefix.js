// Rewrite a path prefix: /old/... is served as /new/... (query kept).
const FROM = '/old/';
const TO = '/new/';

export function onRequest(req) {
  if (req.path.startsWith(FROM)) return { path: TO + req.path.slice(FROM.length) + req.search };
}
