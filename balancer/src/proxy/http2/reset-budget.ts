// The client-reset budget of one HTTP/2 session (CVE-2023-44487, "rapid reset"): a client that opens
// streams and resets them before their answer makes us route, pick and dispatch each one for nothing.
// A token bucket: `burst` resets, refilled at `rate` a second; empty = the session is cut with
// GOAWAY ENHANCE_YOUR_CALM. Pure (the clock is passed in).

export class ResetBudget {
  #tokens: number;
  #at: number;

  constructor(readonly burst: number, readonly ratePerSecond: number, now: number) {
    this.#tokens = burst;
    this.#at = now;
  }

  /** One reset at `now`; false when the budget is spent. */
  take(now: number): boolean {
    const elapsed = Math.max(0, now - this.#at);
    this.#at = now;
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.ratePerSecond) / 1000);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
