/**
 * auth-limiter.ts — failed SMTP AUTH attempts, per connection and per client IP (AuthMaxFailures).
 *
 *   new AuthFailures(windowMs?, now?)   one per front end: it outlives SIGHUP's new Runtime
 *     .count(ip) -> failures of this IP in the current window
 *     .fail(ip)  -> the count after this failure
 *   failureDelayMs(n) -> how long the answer to the n-th failure waits
 *
 * With Workers N the primary keeps the one AuthFailures of the daemon and the workers ask it
 * (daemon/worker-link.ts): the counts are an AuthFailureCounter, answered now or later.
 *
 * Rule (commands/auth.ts): an IP with AuthMaxFailures failures in its window is answered
 * 421 4.7.0 at its next AUTH without a password check; a failure that brings the connection's or
 * the IP's count to AuthMaxFailures is answered 421 4.7.0 and the connection closed; any other
 * failure is answered 535 5.7.8 after failureDelayMs(max of the two counts): 0.5 s, 1 s, 2 s, 4 s,
 * then 8 s at most. The wait is a timer, never a busy loop; a success is answered at once.
 * The window is fixed: it starts at an IP's first failure and lasts AUTH_WINDOW_MS.
 */

/** how long an IP's failures count */
export const AUTH_WINDOW_MS = 15 * 60_000;
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 8000;
/** past this many IPs, expired windows are swept at the next failure */
const SWEEP_AT = 10_000;

export function failureDelayMs(n: number): number {
  if (n <= 0) return 0;
  return Math.min(FIRST_DELAY_MS * 2 ** (n - 1), MAX_DELAY_MS);
}

/** The IP counts as commands/auth.ts reads them: here, or from the primary across the workers. */
export interface AuthFailureCounter {
  count(ip: string): number | Promise<number>;
  fail(ip: string): number | Promise<number>;
}

export class AuthFailures implements AuthFailureCounter {
  private readonly byIp = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly windowMs = AUTH_WINDOW_MS,
    private readonly now: () => number = Date.now,
  ) {}

  count(ip: string): number {
    const e = this.byIp.get(ip);
    if (!e) return 0;
    if (this.now() - e.since >= this.windowMs) {
      this.byIp.delete(ip);
      return 0;
    }
    return e.count;
  }

  fail(ip: string): number {
    const count = this.count(ip) + 1;
    const e = this.byIp.get(ip);
    if (e) e.count = count;
    else {
      if (this.byIp.size >= SWEEP_AT) this.sweep();
      this.byIp.set(ip, { count, since: this.now() });
    }
    return count;
  }

  private sweep(): void {
    const t = this.now();
    for (const [ip, e] of this.byIp) if (t - e.since >= this.windowMs) this.byIp.delete(ip);
  }
}
