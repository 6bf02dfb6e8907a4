// nginx_upstream_check_module rise/fall: `rise` consecutive successes bring a down server up,
// `fall` consecutive failures take an up server down. A result of the other kind resets the run.
export class RiseFall {
  private isUp: boolean;
  private okRun = 0;
  private failRun = 0;

  constructor(readonly rise: number, readonly fall: number, initiallyUp: boolean) {
    this.isUp = initiallyUp;
  }

  get up(): boolean { return this.isUp; }
  /** consecutive successes so far */
  get successes(): number { return this.okRun; }
  /** consecutive failures so far */
  get failures(): number { return this.failRun; }

  /** Takes a state decided elsewhere (the primary's shared checker): up/down and the current run. */
  force(up: boolean, consecutive: number): void {
    this.isUp = up;
    this.okRun = up ? Math.max(0, consecutive) : 0;
    this.failRun = up ? 0 : Math.max(0, consecutive);
  }

  /** Records one check result; true when it changed the up/down state. */
  observe(ok: boolean): boolean {
    if (ok) {
      this.okRun++;
      this.failRun = 0;
      if (!this.isUp && this.okRun >= this.rise) {
        this.isUp = true;
        return true;
      }
    } else {
      this.failRun++;
      this.okRun = 0;
      if (this.isUp && this.failRun >= this.fall) {
        this.isUp = false;
        return true;
      }
    }
    return false;
  }
}
