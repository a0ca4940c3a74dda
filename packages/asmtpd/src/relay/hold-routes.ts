/**
 * relay/hold-routes — where a held recipient goes when the hold queue delivers it.
 *
 *   createHoldRoutes(config, { target?, resolveMx?, socketRelay? }) → HoldRoutes
 *     routeOf(address) → { key, relay, holdDomain } | null (no route: the recipient stays queued)
 *     close()           closes the relays it made (pooled SMTP sessions)
 *   createMxRelay(domain, resolveMx, relayOf) → Relay   the domain's MX hosts by preference (RFC 5321
 *     §5.1): the next only while the one before cannot be reached; no MX: the domain itself
 *     (implicit MX); null MX (RFC 7505): 556 5.1.10; no such domain: 550 5.1.2; a failed lookup: 4.4.3
 *
 * Routes, in order:
 *   target (asmtpd --flush --to HOST:PORT, ETRN/ATRN's own)  every recipient there
 *   HoldDomain DOMAIN            its site HOST:PORT, else the domain's MX
 *   RelayDomain / Mailertable    its backends (the fallbacks while the first is down)
 *   RelayHost                    SMTP or LMTP, pooled
 *   Sendmail                     the command
 *   none of these                null: mail stays held until a flush names a target
 * Relays are made at first use and shared by the recipients with the same key (one pool each).
 */
import type { MxRecord } from 'node:dns';
import type { Config } from '../config/types.js';
import { createRelayDomainTable, hasRelayDomains } from '../recipients/relay-domains.js';
import { REPLIES } from '../reply/catalogue.js';
import { createFallbackRelay } from './domain-relay.js';
import { createSendmailRelay } from './sendmail-relay.js';
import { createSmtpRelay } from './smtp-relay.js';
import type { DeliveryResult, Relay } from './types.js';

export interface HoldRoute {
  /** recipients with the same key go in one transaction */
  key: string;
  relay: Relay;
  /** the recipient's domain is a HoldDomain (the retry scheduler leaves it alone) */
  holdDomain: boolean;
}

export interface HoldRoutes {
  routeOf(address: string): HoldRoute | null;
  close(): Promise<void>;
}

export interface HoldRoutesOptions {
  /** every recipient to this host (asmtpd --flush --to, ETRN to a site) */
  target?: { host: string; port: number };
  /** every recipient over this relay (ATRN: the reversed connection) */
  relay?: Relay;
  /** for HoldDomains without a site; absent: those stay held (no route) */
  resolveMx?: (domain: string) => Promise<MxRecord[]>;
}

export const domainOf = (address: string): string => address.slice(address.lastIndexOf('@') + 1).toLowerCase();

export function createHoldRoutes(config: Config, opts: HoldRoutesOptions = {}): HoldRoutes {
  const made = new Map<string, Relay>();
  const once = (key: string, make: () => Relay): Relay => {
    let r = made.get(key);
    if (!r) made.set(key, (r = make()));
    return r;
  };
  const smtp = (host: string, port: number): Relay =>
    once(`smtp:${host}:${port}`, () =>
      createSmtpRelay({
        target: { kind: 'smtp', host, port },
        clientName: config.hostname,
        timeoutMs: config.relayTimeoutMs,
        pool: { maxConnections: config.relayConnections },
      }),
    );
  const holdDomains = new Map(config.holdDomains.map((d) => [d.domain, d]));
  const table = hasRelayDomains(config)
    ? createRelayDomainTable(config.relayDomains, {
        subdomains: config.rcptVerifySubdomains,
        mailertable: config.mailertable,
      })
    : null;

  function routeOf(address: string): HoldRoute | null {
    const domain = domainOf(address);
    const hold = holdDomains.get(domain);
    const isHold = hold !== undefined;
    if (opts.relay) return { key: 'given', relay: opts.relay, holdDomain: isHold };
    if (opts.target) return { key: 'target', relay: smtp(opts.target.host, opts.target.port), holdDomain: isHold };
    if (hold) {
      if (hold.site) return { key: `site:${domain}`, relay: smtp(hold.site.host, hold.site.port), holdDomain: true };
      const resolveMx = opts.resolveMx;
      if (!resolveMx) return null;
      return {
        key: `mx:${domain}`,
        relay: once(`mx:${domain}`, () => createMxRelay(domain, resolveMx, (h) => smtp(h, 25))),
        holdDomain: true,
      };
    }
    const backend = table?.lookup(domain);
    if (backend) {
      const key = backend.backends.map((b) => `${b.host}:${b.port}`).join(',');
      return {
        key: `rd:${key}`,
        relay: once(`rd:${key}`, () => createFallbackRelay(backend.backends.map((b) => smtp(b.host, b.port)))),
        holdDomain: false,
      };
    }
    if (config.relayHost) {
      const target = config.relayHost;
      return {
        key: 'main',
        relay: once('main', () =>
          createSmtpRelay({
            target,
            clientName: config.hostname,
            timeoutMs: config.relayTimeoutMs,
            pool: { maxConnections: config.relayConnections },
          }),
        ),
        holdDomain: false,
      };
    }
    if (config.sendmail && config.sendmail.length > 0) {
      const argvTemplate = config.sendmail;
      return {
        key: 'main',
        relay: once('main', () => createSendmailRelay({ argvTemplate, timeoutMs: config.relayTimeoutMs })),
        holdDomain: false,
      };
    }
    return null;
  }

  return {
    routeOf,
    async close() {
      await Promise.all([...made.values()].map((r) => r.close()));
    },
  };
}

export function createMxRelay(
  domain: string,
  resolveMx: (domain: string) => Promise<MxRecord[]>,
  relayOf: (host: string) => Relay,
): Relay {
  const fail = (r: DeliveryResult): DeliveryResult => r;
  return {
    async deliver(msg, log) {
      const started = Date.now();
      let hosts: string[];
      try {
        const mx = await resolveMx(domain);
        if (mx.length === 1 && (mx[0]!.exchange === '' || mx[0]!.exchange === '.'))
          return fail({ kind: 'rejected', reply: REPLIES.mxNullMx(domain), ms: Date.now() - started });
        hosts = mx.length === 0 ? [domain] : [...mx].sort((a, b) => a.priority - b.priority).map((m) => m.exchange);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENODATA') hosts = [domain];
        else if (code === 'ENOTFOUND')
          return { kind: 'rejected', reply: REPLIES.mxNoDomain(domain), ms: Date.now() - started };
        else
          return {
            kind: 'deferred',
            reply: REPLIES.mxLookupFailed(domain, code ?? (err as Error).message),
            ms: Date.now() - started,
          };
      }
      return createFallbackRelay(hosts.map((h) => relayOf(h.replace(/\.$/, '')))).deliver(msg, log);
    },
    describe: () => `MX of ${domain}`,
    close: async () => {},
  };
}
