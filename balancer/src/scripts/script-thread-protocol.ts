// What the worker process and its script thread exchange: one request at a time, the message on a
// MessagePort (read synchronously with receiveMessageOnPort), the hand-over through Int32 flags in a
// SharedArrayBuffer (Atomics.wait / notify), and the thread's start time of the current call.
export const CTL = { ready: 0, request: 1, done: 2 } as const;
/** 8 Int32 flags, then one Float64 (the current call's start, epoch ms) */
export const SAB_BYTES = 40;

export type ThreadRequest =
  | { readonly op: 'load'; readonly key: string; readonly name: string; readonly source: string; readonly loadTimeoutMs: number; readonly memoryBudget: number }
  | { readonly op: 'unload'; readonly key: string }
  | { readonly op: 'call'; readonly key: string; readonly hook: 0 | 1; readonly input: string };

export type ThreadReply =
  | { readonly ok: true; readonly out?: string; readonly hooks?: number }
  | { readonly ok: false; readonly error: string; readonly code?: string; readonly line?: number; readonly disabled?: boolean };
