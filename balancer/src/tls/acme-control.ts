// What the primary holds of the ACME manager (acme-manager.ts, loaded only when ACME is configured):
// its own file so tls-primary.ts and the manager both sit above it.
export interface AcmeControl {
  /** names wanted and their state (admin GET /acme) */
  status(): Promise<unknown>;
  /** ask for a new certificate now, whatever the renewal schedule (any instance may do the order) */
  forceRenew(name: string): Promise<boolean>;
  stop(): Promise<void>;
}
