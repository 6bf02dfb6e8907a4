// The next step in explaining a catalog index move (write-ledger.ts says what the move covers): a pure
// decision over what the follower knows now, so every branch is a row of a scenario table. The shell
// (consul-catalog.ts) gathers the inputs, does what the step says and asks again when a read, a summary,
// a signal answer or the wait's end changes one of them.
// When in doubt, read: nothing here assumes a write it cannot name changed nothing. An index no read
// names at all (a gap) may be KV, session or coordinate noise, or a services-table write that changed no
// count (an ID re-registered on another port, a deregistration and a registration of one service): on
// plain HTTP nothing tells the two apart, so a gap the summary leaves is re-read (a rescan of the
// services not read since it), never accepted. Only an index a read names as a deletion is ruled out by
// the summary (a deletion changes a count).
// Nor does a named write rule out the services no read names: one raft index may write several services
// (a /v1/txn applies every op at one index, state/txn.go; one may move an instance to another port,
// which changes no count, while another adds an instance a read then names). So a window closed as
// explained (or its deletions counted) is still followed by a rescan of the services whose last read
// began before it (`verify`): it does not hold up what the reads already showed, and it re-reads only
// services no read since the window's end covers. The rescans are one at a time and folded
// (rescan-queue.ts), so under churn this is one background sweep, not one per move.

export interface ExplainInputs {
  /** indexes of the window no instance of a read names (write-ledger notByInstance) */
  readonly notByInstance: number;
  /** indexes of the window no read names at all, not even as a deletion (write-ledger unattributed) */
  readonly unnamed: number;
  /** the catalog answers' own indexes of the window that no read names (write-ledger answersUnnamed) */
  readonly answersUnnamed: number;
  /** a read this window asked for (a guess, the summary's re-reads) is not answered yet */
  readonly ownReadsPending: boolean;
  /** any service read is queued or under way (it may name the move) */
  readonly anyReadUnderWay: boolean;
  /** what is left of the time the move may wait for reads and the checks signal to name it */
  readonly waitLeftMs: number;
  /** the checks signal has answered at or past the move (a registration with checks has shown) */
  readonly checksCaughtUp: boolean;
  /** what is left of the (shorter) time a rescan waits for the checks signal to name the move */
  readonly checksGraceLeftMs: number;
  /** the next service to guess (the one whose membership changed last, not read since the move) */
  readonly guess: string | undefined;
  readonly summaryUsable: boolean;
  /** a summary reflecting the move has been read (and the reads it asked for are `ownReadsPending`) */
  readonly summaryReflects: boolean;
  /** another summary may be read in this window */
  readonly summariesLeft: boolean;
  /** a summary read is under way (a later move may still guess meanwhile) */
  readonly summaryInFlight: boolean;
}

export type ExplainStep =
  /** every write of the window is one an instance named: the services those reads show are current;
   * the rest are re-read (`verify`, a rescan reason): the same index may have written them too */
  | { readonly kind: 'explained'; readonly verify: string }
  /** a read the window asked for is under way: ask again when it is answered */
  | { readonly kind: 'await-reads' }
  /** ask again after `ms` (or sooner, when a read or signal is answered) */
  | { readonly kind: 'wait'; readonly ms: number }
  | { readonly kind: 'guess'; readonly service: string }
  | { readonly kind: 'summary' }
  /** every index left is a deletion a read named and the summary matched every count: a deletion
   * changes a count, so none is left unread */
  | { readonly kind: 'deletions-counted'; readonly verify: string }
  /** the move cannot be located: re-read every service not read since it */
  | { readonly kind: 'rescan'; readonly reason: string };

/** Why a window whose writes reads all named is still re-read (the rescan reason, counted in stats). */
export const VERIFY_REASON = 'one index may write services no read names (a /v1/txn)';

export function nextExplainStep(s: ExplainInputs): ExplainStep {
  if (s.notByInstance === 0) return { kind: 'explained', verify: VERIFY_REASON };
  if (s.ownReadsPending) return { kind: 'await-reads' };
  // a read under way may name the move: wait for it, but only so long (under churn one always is)
  if (s.waitLeftMs > 0 && s.anyReadUnderWay) return { kind: 'wait', ms: s.waitLeftMs };
  if (s.guess !== undefined && !s.summaryReflects) return { kind: 'guess', service: s.guess };
  if (s.summaryInFlight) return { kind: 'await-reads' };
  if (s.summaryUsable && !s.summaryReflects && s.summariesLeft) return { kind: 'summary' };
  if (s.summaryUsable && s.summaryReflects && s.unnamed === 0) return { kind: 'deletions-counted', verify: VERIFY_REASON };
  // before re-reading everything, give the checks signal a moment to name the change (a registration
  // with checks shows there at the same index: the agent syncs a service with its checks in one write)
  if (s.checksGraceLeftMs > 0 && !s.checksCaughtUp) return { kind: 'wait', ms: s.checksGraceLeftMs };
  if (s.summaryUsable && s.summaryReflects && s.answersUnnamed > 0) return { kind: 'rescan', reason: 'catalog write not located by the summary' };
  // a gap below a named catalog write: KV noise, or a count-preserving services write in the same answer
  if (s.summaryUsable && s.summaryReflects) return { kind: 'rescan', reason: 'write no read names inside a catalog answer' };
  return { kind: 'rescan', reason: s.summaryUsable ? 'catalog move unexplained after summaries' : 'catalog move unexplained (no summary)' };
}
