/**
 * trace-limit.ts — at most `max` route traces in flight in the network-facts process: each holds a
 * raw socket and sends up to NetPathMaxHops probes, and clients from many networks at once must
 * not turn the MX into a traceroute flood. Past the limit a trace fails at once (the session gets
 * no CLIENT_NETPATH; it waits for nothing).
 *
 *   limitTraces(trace, max) -> (ip, maxHops, timeoutMs) => Promise<R>
 */
export function limitTraces<R>(
  trace: (ip: string, maxHops: number, timeoutMs: number) => Promise<R>,
  max: number,
): (ip: string, maxHops: number, timeoutMs: number) => Promise<R> {
  let running = 0;
  return async (ip, maxHops, timeoutMs) => {
    if (running >= max) throw new Error(`${max} route traces already running`);
    running++;
    try {
      return await trace(ip, maxHops, timeoutMs);
    } finally {
      running--;
    }
  };
}
