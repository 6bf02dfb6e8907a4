// What a client's FIN after its request means (--client-half-close). On HTTP/1.1 over TCP a FIN cannot
// tell a client that only shut down its write side (`shutdown(SHUT_WR)`, `nc -N`, one-shot HTTP/1.0
// clients: it still reads) from one that went away (closed the socket): both arrive as the same FIN.
// - abort (default, nginx's proxy_ignore_client_abort off): the client left; its request's upstream
//   exchange is aborted at once, nothing is answered (nginx logs 499).
// - answer (HAProxy without `option abortonclose`): the request is served and answered, pipelined
//   requests already read included, then the connection closes; an upstream exchange of a client that
//   really left runs to its end (or its timeouts) and the answer is dropped.
export const CLIENT_HALF_CLOSE = ['abort', 'answer'] as const;
export type ClientHalfClose = (typeof CLIENT_HALF_CLOSE)[number];
export const DEFAULT_CLIENT_HALF_CLOSE: ClientHalfClose = 'abort';
