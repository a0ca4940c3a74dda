/**
 * relay/hold-retry — the running daemon's retries of held mail (HoldRetry, HoldMaxAge).
 *
 *   startHoldRetry(config, log) → { stop(): Promise<void> }
 *     config: a getter (the configuration after SIGHUP is read at each pass)
 *
 * Every tick (a quarter of HoldRetry's first interval, between 250 ms and 30 s) one pass of
 * hold-flush.ts with dueOnly: messages whose next retry is due (first: HoldRetry's first interval
 * after they were queued; then doubling up to its longest) go to their routes; HoldDomain
 * recipients are left for a flush or ATRN; anything older than HoldMaxAge goes to failed/ with a
 * DSN. A pass never overlaps the previous one. stop() waits for the pass under way.
 *
 * Run it in ONE process (the daemon's main one): the claims (queue-store.ts) keep a second
 * runner, asmtpd --flush, ETRN and ATRN from sending a message twice anyway, but two schedulers
 * would only compete for the same messages.
 */
import type { Config } from '../config/types.js';
import { createDnsResolver } from '../dns/resolver.js';
import type { Logger } from '../log/logger.js';
import { flushHeld } from './hold-flush.js';

export interface HoldRetry {
  stop(): Promise<void>;
}

export function tickMs(config: Config): number {
  return Math.min(30_000, Math.max(250, Math.floor(config.holdRetry.minMs / 4)));
}

export function startHoldRetry(config: () => Config, log: Logger): HoldRetry {
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  const pass = async (): Promise<void> => {
    const c = config();
    const dns = createDnsResolver({
      kind: c.dnsResolver,
      servers: c.dnsServers,
      protocol: c.dnsProtocol,
      timeoutMs: c.dnsTimeoutMs,
    });
    try {
      await flushHeld({
        dir: c.holdQueue,
        config: c,
        dueOnly: true,
        by: 'retry',
        log,
        resolver: dns,
      });
    } catch (err) {
      log.error('daemon.error', { error: `hold queue retry: ${(err as Error).message}` });
    }
  };
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass().finally(() => {
        running = null;
        schedule();
      });
    }, tickMs(config()));
    timer.unref();
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
