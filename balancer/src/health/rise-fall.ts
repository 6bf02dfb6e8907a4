// nginx_upstream_check_module rise/fall: `rise` consecutive successes bring a down server up,
// `fall` consecutive failures take an up server down.
export class RiseFall {
  private isUp: boolean;
  constructor(readonly rise: number, readonly fall: number, initiallyUp: boolean) { this.isUp = initiallyUp; }
  get up(): boolean { return this.isUp; }
  observe(ok: boolean): boolean { void ok; return false; }
}
