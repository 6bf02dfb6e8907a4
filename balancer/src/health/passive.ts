// nginx passive health (max_fails / fail_timeout):
// - maxFails failures within a failTimeoutMs window eject the server for failTimeoutMs;
// - when the ejection ends, traffic may resume but only one probe request at a time is let through
//   (nginx marks the peer "checked" when it picks it): the probe's success restores the server fully,
//   its failure ejects it again for failTimeoutMs; a probe without an answer for failTimeoutMs frees
//   the slot for another probe;
// - successes do not reset the failure count inside a window (nginx counts failures per window);
// - maxFails 0 disables passive ejection.
export interface PassiveSnapshot {
  /** failures counted in the current window */
  readonly failures: number;
  /** 0 when not ejected; while now < ejectedUntil no request is let through */
  readonly ejectedUntil: number;
  /** ejection time over, waiting for a probe to succeed */
  readonly probation: boolean;
}

export class PassiveHealth {
  private failures = 0;
  private windowStart = 0;
  private ejectedUntil = 0;
  /** when the outstanding probe started; -1 = none */
  private probeAt = -1;

  constructor(private maxFails: number, private failTimeoutMs: number) {}

  /** Keeps counters; used when a server stays in a new table with other settings. */
  reconfigure(maxFails: number, failTimeoutMs: number): void {
    this.maxFails = maxFails;
    this.failTimeoutMs = failTimeoutMs;
    if (maxFails === 0) this.reset();
  }

  recordFailure(now: number): void {
    if (this.maxFails === 0) return;
    if (this.ejectedUntil !== 0) {
      // the probe (or a request started before the ejection) failed
      if (now >= this.ejectedUntil) {
        this.ejectedUntil = now + this.failTimeoutMs;
        this.probeAt = -1;
      }
      return;
    }
    if (this.failures === 0 || now - this.windowStart > this.failTimeoutMs) {
      this.windowStart = now;
      this.failures = 0;
    }
    this.failures++;
    if (this.failures >= this.maxFails) {
      this.ejectedUntil = now + this.failTimeoutMs;
      this.probeAt = -1;
    }
  }

  /** Ejected until `until` (an ejection decided elsewhere: another worker); never shortens one. */
  ejectUntil(until: number): void {
    if (this.maxFails === 0 || until <= this.ejectedUntil) return;
    this.ejectedUntil = until;
    this.probeAt = -1;
  }

  recordSuccess(now: number): void {
    // during the ejection itself, a success of a request started earlier does not end it
    if (this.ejectedUntil !== 0 && now < this.ejectedUntil) return;
    if (this.ejectedUntil !== 0) this.reset();
  }

  /** An attempt to this server starts now: in probation it takes the single probe slot. */
  noteAttempt(now: number): void {
    if (this.ejectedUntil !== 0 && now >= this.ejectedUntil && !this.probeOutstanding(now)) this.probeAt = now;
  }

  isEjected(now: number): boolean {
    if (this.ejectedUntil === 0) return false;
    if (now < this.ejectedUntil) return true;
    return this.probeOutstanding(now);
  }

  snapshot(now?: number): PassiveSnapshot {
    const windowOver = now !== undefined && now - this.windowStart > this.failTimeoutMs && this.ejectedUntil === 0;
    return {
      failures: windowOver ? 0 : this.failures,
      ejectedUntil: this.ejectedUntil,
      probation: this.ejectedUntil !== 0 && now !== undefined && now >= this.ejectedUntil,
    };
  }

  private probeOutstanding(now: number): boolean {
    return this.probeAt >= 0 && now - this.probeAt < this.failTimeoutMs;
  }

  private reset(): void {
    this.failures = 0;
    this.ejectedUntil = 0;
    this.probeAt = -1;
  }
}
