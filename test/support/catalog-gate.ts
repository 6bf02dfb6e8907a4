// A dispatcher in front of a watcher's own: while `holding`, requests to /v1/catalog/services wait on
// the client side (so the one answer after `release()` covers every write made meanwhile, against the
// double or a real agent alike); `rewrite` may send a request elsewhere (e.g. to a path the agent refuses).
import { Dispatcher } from 'undici';

export class CatalogGate extends Dispatcher {
  readonly held: (() => void)[] = [];
  holding = false;
  constructor(private readonly inner: Dispatcher, private readonly rewrite?: (path: string) => string) {
    super();
  }
  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const path = this.rewrite ? this.rewrite(String(opts.path)) : String(opts.path);
    const o = path === opts.path ? opts : { ...opts, path };
    if (this.holding && path.startsWith('/v1/catalog/services')) {
      this.held.push(() => this.inner.dispatch(o, handler));
      return true;
    }
    return this.inner.dispatch(o, handler);
  }
  release(): void {
    this.holding = false;
    for (const go of this.held.splice(0)) go();
  }
  // the watcher never closes a dispatcher it was given; the test closes the inner one
  override close(): Promise<void> {
    return Promise.resolve();
  }
  override destroy(): Promise<void> {
    return Promise.resolve();
  }
}
