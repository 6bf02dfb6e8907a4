// IPC between the harness (backend-pool.ts) and the backend process (backend-process.ts).
export type BackendRequest =
  | { readonly type: 'open'; readonly id: number; readonly count: number }
  | { readonly type: 'watch'; readonly id: number; readonly port: number }
  | { readonly type: 'counts'; readonly id: number };

export type BackendReply =
  | { readonly type: 'opened'; readonly id: number; readonly ports: number[] }
  | { readonly type: 'watching'; readonly id: number }
  | { readonly type: 'counts'; readonly id: number; readonly hits: Record<string, number> }
  | { readonly type: 'error'; readonly id: number; readonly message: string }
  /** unsolicited: first hit on a watched port, epoch milliseconds with sub-ms precision */
  | { readonly type: 'hit'; readonly port: number; readonly at: number };
