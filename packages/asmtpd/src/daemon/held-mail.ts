/**
 * held-mail.ts — the daemon's HeldMail (smtp/held-mail.ts) for ETRN and ATRN: the hold queue of
 * the running configuration (relay/hold-flush.ts).
 *
 *   createHeldMail(runtime, log) -> HeldMail
 *     count(domain)                 countHeldFor(HoldQueue, domain)
 *     flush(domain)                 flushHeld of the domain's recipients to their routes (the
 *                                   HoldDomain's site, else its MX), by 'etrn'
 *     deliverOver(socket, domains)  ATRN: relay/atrn-delivery.ts over the reversed connection
 */
import type { Logger } from '../log/logger.js';
import { countHeldFor, flushHeld } from '../relay/hold-flush.js';
import { deliverHeldDomainsOver } from '../relay/atrn-delivery.js';
import type { HeldMail } from '../smtp/held-mail.js';
import type { Runtime } from '../smtp/runtime.js';

export function createHeldMail(runtime: () => Runtime, log: Logger): HeldMail {
  return {
    count: (domain) => countHeldFor(runtime().config.holdQueue, domain),
    flush: (domain) => {
      const { config, resolver } = runtime();
      return flushHeld({ dir: config.holdQueue, config, domain, by: 'etrn', log, resolver });
    },
    deliverOver: (socket, domains) => {
      const config = runtime().config;
      return deliverHeldDomainsOver(socket, {
        dir: config.holdQueue,
        domains,
        hostname: config.hostname,
        config,
        log,
      });
    },
  };
}
