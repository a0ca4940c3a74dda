/**
 * client-facts.ts — what asmtpd learns about one client while the SMTP dialogue runs
 * (spec asmtpd.md §4; docs/facts.md). Facts start as soon as their input is known and are
 * awaited only when a recipient's policy needs them.
 *
 *   createClientFacts(ip, deps) -> ClientFacts
 *     .connected(port, {tcpPeer})  start reverse DNS, every DNSBL, and (when the client is the
 *                              TCP peer, not named by a PROXY header) the SYN lookup and the route trace
 *     .mailFrom(sender, helo)  start SPF of MAIL FROM and of HELO, and the bounce probe
 *     .settle() -> FactValues  await what was started, each within its own bound; never rejects
 *
 * Metrics: each fact's time from its start to its value and its temporary failures
 * (asmtpd_fact_seconds, asmtpd_fact_failures_total; timed() below).
 *
 * Bounds: reverse DNS, each DNSBL and each SPF check within DNSTimeout as a whole (a late one
 * counts as a temporary failure); the bounce probe within SMTPCBTimeout (the prober's own).
 */
import { checkHelo, checkMailFrom, type CheckOptions, type SpfResult, type SpfResolver } from '@asmtpd/spf';
import type { Config } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { splitAddress } from '../recipients/address.js';
import { queryRbls, type RblResult } from './dnsbl.js';
import { reverseName, type ReverseName } from './reverse-dns.js';
import { withDeadline } from './deadline.js';
import type { BounceAnswer } from './bounce-types.js';
import { metrics, type FactKind } from '../metrics/metrics.js';

/** The fact's time and whether it failed temporarily go to the metrics when it settles. */
function timed<T>(kind: FactKind, p: Promise<T>, failed: (value: T) => boolean): Promise<T> {
  const started = Date.now();
  void p.then((v) => metrics.fact(kind, Date.now() - started, failed(v)));
  return p;
}

/** The client's SYN as captured (synfp/): CLIENT_SYNFP, CLIENT_SYNOS, and hops from its TTL. */
export interface SynFact {
  fp: string;
  os: string | null;
  hops: number;
}

/** The route to the client (NetPath): CLIENT_NETHOPS, CLIENT_NETPATH. */
export { routersOf, type RouteFact } from './route-fact.js';
import type { RouteFact } from './route-fact.js';
import { ANSWER_TEXTS } from '../reply/catalogue.js';

/** Facts from the privileged network process; each call is bounded by its implementation. */
export interface NetFactSource {
  syn(clientIp: string, clientPort: number): Promise<SynFact | null>;
  /** null when NetPath is off */
  route: ((clientIp: string) => Promise<RouteFact | null>) | null;
}

export interface FactDeps {
  config: Config;
  resolver: SpfResolver;
  /** null: SMTPCB off */
  prober: { probe(sender: string): Promise<BounceAnswer> } | null;
  /** a domain of ours (LocalDomain, DomainFile): no bounce probe */
  isOwnDomain(domain: string): boolean;
  /** SYN capture and route tracing; null when off */
  net?: NetFactSource | null;
  /** SPFHostsFile lookup */
  spfHostsRecord?: (domain: string) => string | undefined;
  log: Logger;
}

export interface FactValues {
  reverse: ReverseName | null;
  /** null when no RBL is configured */
  rbl: RblResult | null;
  /** MAIL FROM; null before MAIL */
  spf: SpfResult | null;
  /** null without HELO */
  spfHelo: SpfResult | null;
  /** null when no probe ran (SMTPCB off, null sender, our own domain) */
  bounce: BounceAnswer | null;
  /** null when SynFP is off or the SYN was not seen */
  syn: SynFact | null;
  /** null when NetPath is off or the trace failed */
  route: RouteFact | null;
}

export interface ClientFacts {
  /**
   * tcpPeer false: the client was named by a PROXY header (ProxyProtocol); the SYN and the route
   * would be the load balancer's, so neither is taken
   */
  connected(port: number, opts?: { tcpPeer: boolean }): void;
  mailFrom(sender: string, helo: string | null): void;
  settle(): Promise<FactValues>;
}

const LATE_REVERSE: ReverseName = { name: null, ptr: null, tempfail: true };

export function createClientFacts(ip: string, deps: FactDeps): ClientFacts {
  const { config, resolver, log } = deps;
  const timeoutMs = config.dnsTimeoutMs;
  let reverse: Promise<ReverseName> | null = null;
  let rbl: Promise<RblResult> | null = null;
  let spf: Promise<SpfResult> | null = null;
  let spfHelo: { helo: string; result: Promise<SpfResult> } | null = null;
  let bounce: Promise<BounceAnswer> | null = null;
  let syn: Promise<SynFact | null> | null = null;
  let route: Promise<RouteFact | null> | null = null;

  const spfOptions = (helo: string | null): CheckOptions => ({
    resolver,
    receiver: config.hostname,
    timeoutMs,
    ...(helo !== null ? { helo } : {}),
    ...(config.spfLocal !== null ? { local: config.spfLocal } : {}),
    ...(deps.spfHostsRecord ? { hostsRecord: deps.spfHostsRecord } : {}),
  });

  return {
    connected(port, opts = { tcpPeer: true }) {
      const started = Date.now();
      const net = opts.tcpPeer ? (deps.net ?? null) : null;
      // started in a microtask: the caller's banner goes out first (its write is synchronous),
      // and the lookups' synchronous part (cache reads, timers) does not delay it
      const now = Promise.resolve();
      // syn: not seen; route: the trace failed
      syn = net
        ? timed(
            'syn',
            now.then(() => net.syn(ip, port)).catch(() => null),
            (v) => v === null,
          )
        : null;
      route = net?.route
        ? timed(
            'route',
            now.then(() => net.route?.(ip) ?? null).catch(() => null),
            (v) => v === null,
          )
        : null;
      reverse = timed(
        'reverse',
        now.then(() => withDeadline(reverseName(ip, resolver), timeoutMs, () => LATE_REVERSE)),
        (v) => v.tempfail === true,
      );
      rbl =
        config.rbls.length > 0
          ? timed(
              'rbl',
              now.then(() => queryRbls(ip, config.rbls, resolver, timeoutMs)),
              (v) => v.problems.some((p) => p.kind !== 'ignored'),
            )
          : null;
      void Promise.all([reverse, rbl]).then(([rev, bl]) => {
        log.info('session.facts', {
          ptr: rev.ptr,
          name: rev.name,
          ...(rev.tempfail ? { dnsfail: true } : {}),
          ...(rev.invalid ? { ptr_invalid: true } : {}),
          ...(bl ? { rbl_score: bl.score, rbl_listed: bl.listed.map((l) => l.zone) } : {}),
          ms: Date.now() - started,
        });
        for (const p of bl?.problems ?? [])
          log.warn('rbl.error', {
            zone: p.zone,
            kind: p.kind,
            detail: p.detail,
            ...(p.kind === 'refused' ? { reason: p.reason, hint: p.hint } : {}),
          });
      });
    },
    mailFrom(sender, helo) {
      // started in a microtask, like the connect facts: the caller's MAIL reply goes out first
      const now = Promise.resolve();
      const spfFailed = (v: SpfResult): boolean => v.result === 'temperror';
      spf = timed(
        'spf',
        now.then(() => checkMailFrom(ip, sender, helo ?? '', spfOptions(helo))),
        spfFailed,
      );
      if (helo !== null && spfHelo?.helo !== helo)
        spfHelo = {
          helo,
          result: timed(
            'spf_helo',
            now.then(() => checkHelo(ip, helo, spfOptions(helo))),
            spfFailed,
          ),
        };
      if (helo === null) spfHelo = null;
      const domain = splitAddress(sender).domain;
      const prober = deps.prober;
      const probe =
        prober !== null && sender !== '' && domain !== '' && !domain.startsWith('[') && !deps.isOwnDomain(domain);
      bounce =
        probe && prober
          ? timed(
              'bounce',
              now
                .then(() => prober.probe(sender))
                .catch((err: Error): BounceAnswer => {
                  log.error('session.error', { error: `bounce probe: ${err.message}` });
                  return { kind: 'tempfail', reply: ANSWER_TEXTS.probeFailed() };
                }),
              (v) => v.kind === 'tempfail',
            )
          : null;
      const started = Date.now();
      void Promise.all([spf, spfHelo?.result ?? null, bounce]).then(([s, sh, b]) => {
        log.info('mail.facts', {
          from: sender,
          spf: s?.result,
          ...(s?.problem ? { spf_problem: s.problem } : {}),
          ...(sh ? { spf_helo: sh.result } : {}),
          ...(b ? { bounce: b.kind, ...(b.reply !== '' ? { bounce_reply: b.reply } : {}) } : {}),
          ms: Date.now() - started,
        });
      });
    },
    async settle() {
      const [rev, bl, s, sh, b, sy, ro] = await Promise.all([
        reverse,
        rbl,
        spf,
        spfHelo?.result ?? null,
        bounce,
        syn,
        route,
      ]);
      return { reverse: rev, rbl: bl, spf: s, spfHelo: sh, bounce: b, syn: sy, route: ro };
    },
  };
}
