/**
 * relay/hold-routes — where a held recipient goes when the hold queue delivers it.
 *
 *   createHoldRoutes(config, { target?, relay?, resolver? }) → HoldRoutes
 *     routeOf(address) → { key, relay, holdDomain } | null (no route: the recipient stays queued)
 *     close()           closes the relays it made (pooled SMTP sessions)
 *   createMxRelay(domain, resolver, relayOf) → Relay   the domain's MX hosts by preference (RFC 5321
 *     §5.1), each by its addresses (A, then AAAA), all looked up with `resolver` (the daemon's
 *     DNSResolver/DNSServer, never the system's getaddrinfo); relayOf(address) is port 25 there.
 *     The next address only while the one before cannot be reached. No MX: the domain itself
 *     (implicit MX); null MX (RFC 7505): 556 5.1.10; no such domain: 550 5.1.2; a failed MX
 *     lookup, or failed address lookups and no address: 451 4.4.3; no exchanger with an address:
 *     550 5.4.4 (RFC 5321 §5.1: "MUST be reported as an error"; Postfix bounces it the same way).
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
import type { Config } from '../config/types.js';
import { addressesOf } from '../facts/bounce-route.js';
import type { ProbeResolver } from '../facts/bounce-types.js';
import { createRelayDomainTable, hasRelayDomains } from '../recipients/relay-domains.js';
import { REPLIES } from '../reply/catalogue.js';
import type { Reply } from '../reply/reply.js';
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
  /** for HoldDomains without a site (MX, A, AAAA); absent: those stay held (no route) */
  resolver?: MxResolver;
}

/** The lookups of MX delivery (node dns.promises shapes and error codes; the daemon's DnsResolver). */
export type MxResolver = ProbeResolver;

/** MX delivery's port (RFC 5321 §4.5.4.2: SMTP to an exchanger is port 25; no directive changes it). */
export const MX_PORT = 25;

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
      const resolver = opts.resolver;
      if (!resolver) return null;
      return {
        key: `mx:${domain}`,
        relay: once(`mx:${domain}`, () => createMxRelay(domain, resolver, (ip) => smtp(ip, MX_PORT))),
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

export function createMxRelay(domain: string, resolver: MxResolver, relayOf: (address: string) => Relay): Relay {
  return {
    async deliver(msg, log) {
      const started = Date.now();
      const rejected = (reply: Reply): DeliveryResult => ({ kind: 'rejected', reply, ms: Date.now() - started });
      const deferred = (reply: Reply): DeliveryResult => ({ kind: 'deferred', reply, ms: Date.now() - started });
      let hosts: string[];
      try {
        const mx = await resolver.resolveMx(domain);
        const real = mx.filter((m) => m.exchange !== '' && m.exchange !== '.');
        if (mx.length > 0 && real.length === 0) return rejected(REPLIES.mxNullMx(domain));
        hosts = [...real]
          .sort((a, b) => a.priority - b.priority)
          .map((m) => m.exchange.toLowerCase().replace(/\.$/, ''));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOTFOUND') return rejected(REPLIES.mxNoDomain(domain));
        if (code !== 'ENODATA') return deferred(REPLIES.mxLookupFailed(domain, code ?? (err as Error).message));
        hosts = [];
      }
      if (hosts.length === 0) hosts = [domain]; // the implicit MX
      hosts = [...new Set(hosts)];
      // every exchanger's addresses at once (a slow name server costs one DNSTimeout, not one each)
      const found = await Promise.all(hosts.map((h) => addressesOf(h, resolver)));
      const addresses = [...new Set(found.flatMap((f) => (f.kind === 'found' ? f.ips : [])))];
      if (addresses.length === 0) {
        const i = found.findIndex((f) => f.kind === 'failed');
        const f = found[i];
        if (f?.kind === 'failed') return deferred(REPLIES.mxLookupFailed(domain, `${hosts[i]}: ${f.code}`));
        return rejected(REPLIES.mxNoAddress(domain));
      }
      return createFallbackRelay(addresses.map(relayOf)).deliver(msg, log);
    },
    describe: () => `MX of ${domain}`,
    close: async () => {},
  };
}
