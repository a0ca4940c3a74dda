/**
 * heap.ts — V8 heap growth for a long-running daemon.
 *
 *   tuneHeapForServer()   called once by the daemon (not the diagnostic modes) before it serves
 *
 * After each full GC V8 sets the next old-generation limit to live size × a factor it derives
 * from how cheap GC looked, as low as 1.1, and it starts a full (incremental) mark-compact when
 * the whole heap, young generation included, reaches that limit. A busy daemon keeps ~14 MB of
 * live objects and a young generation that grows to 16–32 MB, so with a small factor the limit is
 * reached before the young generation ever fills: full GCs take the place of scavenges. Measured
 * on the facts benchmark (docs/performance.md, run G): 43–86 full GCs for 5,500 messages instead
 * of ~5, up to 0.35 s of pauses plus the helper threads' marking, 15–25 % of the throughput; a
 * factor of 2 still let it happen (43 in one run), a factor of 4 did not (6 and 7 in 11,000).
 * So the limit is four times the live heap: ~55 MB for a busy daemon, ~40 MB more than V8's
 * default at most. V8 reads the flag at every full GC, so setting it at startup is enough.
 */
import { setFlagsFromString } from 'node:v8';

const HEAP_GROWING_PERCENT = 300;

export function tuneHeapForServer(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
