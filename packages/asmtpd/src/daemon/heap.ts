/**
 * heap.ts — V8 heap growth for a long-running daemon.
 *
 *   tuneHeapForServer()   called once by the daemon (not the diagnostic modes) before it serves
 *
 * After each full GC V8 sets the next old-generation limit to live size × a factor it derives
 * from how cheap GC looked, as low as 1.1. A daemon that was quiet for a while (V8's memory
 * reducer shrinks the heap then) and gets busy again sits at that limit: its per-session objects
 * that outlive a scavenge fill the ~1.5 MB of headroom within ~100 messages, and every filling
 * starts a full (incremental) mark-compact. Measured on the facts benchmark: 83–86 full GCs and
 * 36 scavenges for 5,500 messages instead of ~4 and ~80, ~0.3 s of pauses plus the helper
 * threads' marking, 15–25 % of the throughput (docs/performance.md, run G). A factor of 2 (the
 * limit at twice the live heap: ~30 MB for the ~15 MB a busy daemon keeps) ends that; V8 reads
 * the flag at every full GC, so setting it at startup is enough.
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_GROWING_PERCENT = 100;

export function tuneHeapForServer(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
