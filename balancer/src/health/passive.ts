// nginx passive health: max_fails failures within fail_timeout eject a server for fail_timeout.
export interface PassiveSnapshot {
  readonly failures: number;
  readonly ejected: boolean;
  readonly ejectedUntil: number;
}

export class PassiveHealth {
  constructor(readonly maxFails: number, readonly failTimeoutMs: number) {}
  recordFailure(now: number): void { void now; }
  recordSuccess(now: number): void { void now; }
  isEjected(now: number): boolean { void now; return false; }
  snapshot(): PassiveSnapshot { return { failures: 0, ejected: false, ejectedUntil: 0 }; }
}
