/**
 * netpath.ts — `asmtpd --netpath IP [HOPS]` (spec asmtpd.md §2): trace the route to IP as the
 * NetPath fact does (facts/netpath/trace.ts) and print what becomes CLIENT_NETHOPS / CLIENT_NETPATH.
 * Needs CAP_NET_RAW. Reads no configuration: HOPS (1-64) defaults to NetPathMaxHops' default, 30;
 * the whole trace is bounded by DEFAULT_TRACE_TIMEOUT_MS (5 s).
 *
 *   runNetpath({ip, maxHops}, out, err, trace?) -> exit code
 *
 * Output (stdout), stable:
 *   hops: N                               CLIENT_NETHOPS
 *   1 ADDRESS                             one line per TTL 1..N: who answered, `*` when nobody did
 *   …                                     (the last line is the destination when it was reached)
 *   N ADDRESS
 * When the destination did not answer, the first line is `hops: N (destination not reached)`:
 * N is then the last TTL that got an answer (a firewall or a silent client after it).
 * Exit: 0 measured; 1 nothing answered, or the probes could not be sent (message on stderr);
 * 2 bad usage, or no permission to open a raw socket (message on stderr).
 */
import {
  DEFAULT_TRACE_TIMEOUT_MS,
  TraceError,
  traceRouteDetail,
  type TraceOptions,
  type TraceResult,
} from '../facts/netpath/trace.js';

interface Writable {
  write(s: string): unknown;
}

export function formatTrace(r: Pick<TraceResult, 'hops' | 'path' | 'reached'>): string {
  const lines = [`hops: ${r.hops}${r.reached ? '' : ' (destination not reached)'}`];
  r.path.forEach((hop, i) => lines.push(`${i + 1} ${hop}`));
  return lines.join('\n') + '\n';
}

export async function runNetpath(
  cmd: { ip: string; maxHops: number },
  out: Writable,
  err: Writable,
  trace: (ip: string, o: TraceOptions) => Promise<TraceResult> = (ip, o) => traceRouteDetail(ip, o),
): Promise<number> {
  try {
    const r = await trace(cmd.ip, { maxHops: cmd.maxHops, timeoutMs: DEFAULT_TRACE_TIMEOUT_MS });
    out.write(formatTrace(r));
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    err.write(`asmtpd: --netpath: ${message}\n`);
    return e instanceof TraceError && (e.code === 'permission' || e.code === 'bad-address') ? 2 : 1;
  }
}
