/**
 * runtime.ts — everything a session needs that comes from the configuration, built once per
 * (re)load and swapped whole on SIGHUP: sessions already running keep the Runtime they started with.
 */
import type { BodyTestRequest, RcptRequest, RunResult } from '@asmtpd/avenger-runner';
import type { Config } from '../config/types.js';
import { networkSet, type NetworkSet } from '../net/cidr.js';
import { createAccounts, withSystemFallback, type Account, type Accounts } from '../recipients/accounts.js';
import { createAliasTable, type AliasTable } from '../recipients/aliases.js';
import { createDomainTable, type DomainTable } from '../recipients/domains.js';
import { routeRecipient, type Route } from '../recipients/route.js';
import { normalizeDomain } from '../recipients/address.js';
import type { PolicyDeps } from '../policy/decide.js';
import { createSystemScriptProbe } from '../policy/system-scripts.js';
import type { Relay } from '../relay/types.js';
import type { Logger } from '../log/logger.js';
import { formatIssue } from '../config/load.js';
import { createDnsResolver, type DnsOptions, type DnsResolver } from '../dns/resolver.js';
import { createClientFacts, type ClientFacts, type FactDeps, type NetFactSource } from '../facts/client-facts.js';
import { loadSpfHosts } from '../facts/spf-hosts.js';
import { createAuthFile, type Authenticator } from '../auth/authenticator.js';
import { createDovecotAuth } from '../auth/dovecot-auth.js';
import { createRelayDomainTable, hasRelayDomains, type RelayDomainTable } from '../recipients/relay-domains.js';
import type { RecipientVerifier } from '../relay/recipient-verifier.js';
import { readWhiteListFile } from '../net/white-list-file.js';

/** What runs scripts: the runner process (daemon) or the runner in-process (--avenge). */
export type ScriptRunner = (req: RcptRequest | BodyTestRequest) => Promise<RunResult>;

/** Makes the bounce prober for a configuration (the daemon's uses the SQLite state database). */
export type ProberFactory = (config: Config, resolver: DnsResolver, log: Logger) => FactDeps['prober'];

export interface RuntimeServices {
  prober?: ProberFactory;
  /** variables the script helpers need, for every script */
  helperEnv?: (config: Config) => Record<string, string>;
  /** SYN capture and route tracing (the privileged network process); absent or null: off */
  net?: (config: Config) => NetFactSource | null;
  /** the daemon's resolver for these settings (default: a new one) */
  resolver?: (options: DnsOptions) => DnsResolver;
  /** the RelayDomain recipient verifier for these settings (pooled sessions, the state database's cache) */
  verifier?: (config: Config) => RecipientVerifier | null;
  /** dictionary-attack blocking over the state database for these settings (daemon/blocklist.ts) */
  abuse?: (config: Config) => AbuseGuard;
}

/**
 * Dictionary-attack blocking as a session sees it (issue 19). The daemon's keeps the live blocks
 * in memory (blocked() is a lookup, no query); without one nothing is counted nor blocked.
 */
export interface AbuseGuard {
  /** the running block that covers ip, if any */
  blocked(ip: string): { net: string; until: number } | null;
  /** a recipient refused as unknown: recorded (unknown_rcpt) and, unless exempt, counted toward a block */
  unknown(ip: string, address: string, exempt: boolean): void;
  /** per-client statistics: a connection admitted, one refused as blocked, a message accepted */
  seen(ip: string, kind: 'connection' | 'blocked' | 'message'): void;
}

export const NO_ABUSE_GUARD: AbuseGuard = {
  blocked: () => null,
  unknown: () => undefined,
  seen: () => undefined,
};

export interface Runtime {
  config: Config;
  localDomains: ReadonlySet<string>;
  relayNets: NetworkSet;
  /** ProxyProtocol: the peers that must send a PROXY header; null when none is listed */
  proxyPeers: NetworkSet | null;
  accounts: Accounts;
  aliases: AliasTable | null;
  domains: DomainTable | null;
  /** RelayDomain: verified against and delivered to their backends; null when none */
  relayDomains: RelayDomainTable | null;
  /** asks the backends (null: no RelayDomain, or no verifier here: recipients are accepted unverified) */
  verifier: RecipientVerifier | null;
  /** RcptVerifySkip: clients whose RelayDomain recipients are not verified */
  verifySkip: NetworkSet;
  /** dictionary-attack blocking (issue 19); never throws */
  abuse: AbuseGuard;
  /** WhiteList and WhiteListFile: never counted nor blocked */
  whiteList: NetworkSet;
  /** RelayNet or WhiteList: a client that is never blocked (an authenticated one neither) */
  neverBlocked(ip: string): boolean;
  relay: Relay;
  policy: PolicyDeps;
  run: ScriptRunner;
  route(address: string, mayRelay: boolean, sourceRoute: boolean): Promise<Route>;
  resolver: DnsResolver;
  /** SMTP AUTH's backend (AuthFile, re-read when it changes, or DovecotAuth); null: AUTH is not offered */
  auth: Authenticator | null;
  /** the fact gatherer of one client */
  facts(ip: string, log: Logger): ClientFacts;
}

export function buildRuntime(
  config: Config,
  relay: Relay,
  run: ScriptRunner,
  log: Logger,
  services: RuntimeServices = {},
): Runtime {
  const onIssues = (issues: readonly { file: string; line: number; message: string }[]): void => {
    for (const i of issues) log.warn('config.error', { warning: formatIssue(i) });
  };
  const accounts = createAccounts(config.passwdFile);
  const avengerAccounts = config.passwdFile ? withSystemFallback(accounts) : accounts;
  const aliases = config.aliasFile ? createAliasTable(config.aliasFile, { onIssues }) : null;
  const domains = config.domainFile ? createDomainTable(config.domainFile, { onIssues }) : null;
  const localDomains = new Set(config.localDomains.map(normalizeDomain));
  const relayDomains = hasRelayDomains(config)
    ? createRelayDomainTable(config.relayDomains, {
        subdomains: config.rcptVerifySubdomains,
        mailertable: config.mailertable,
        onIssues,
      })
    : null;
  const holdDomains = new Set(config.holdDomains.map((d) => d.domain));
  const route = (address: string, mayRelay: boolean, sourceRoute: boolean): Promise<Route> =>
    routeRecipient(address, {
      localDomains,
      mayRelay,
      sourceRoute,
      accounts,
      separator: config.separator,
      aliases,
      domains,
      relayDomains,
      holdDomains,
    });
  const policy: PolicyDeps = {
    run,
    avengerAccount: (): Promise<Account | null> => avengerAccounts.lookup(config.avengerUser),
    route: (address) => route(address, false, false),
    etcDir: config.etcDir,
    systemScriptAbsent: createSystemScriptProbe(config.etcDir),
    separator: config.separator,
    timeoutMs: config.avengerTimeoutMs,
    avengerUser: config.avengerUser,
    helperEnv: services.helperEnv?.(config) ?? {},
  };
  const resolver = (services.resolver ?? createDnsResolver)({
    kind: config.dnsResolver,
    servers: config.dnsServers,
    protocol: config.dnsProtocol,
    timeoutMs: config.dnsTimeoutMs,
  });
  const prober = config.smtpCallback && services.prober ? services.prober(config, resolver, log) : null;
  const isOwnDomain = (domain: string): boolean => {
    const d = normalizeDomain(domain);
    return localDomains.has(d) || holdDomains.has(d) || domains?.lookup(d) != null || relayDomains?.lookup(d) != null;
  };
  const spfHostsRecord = config.spfHostsFile ? loadSpfHosts(config.spfHostsFile, { onIssues }) : undefined;
  const net = services.net?.(config) ?? null;
  const relayNets = networkSet(config.relayNets);
  const whiteList = networkSet([
    ...config.whiteList,
    ...(config.whiteListFile ? readWhiteListFile(config.whiteListFile, onIssues) : []),
  ]);
  const auth = config.authFile
    ? createAuthFile(config.authFile, { onIssues })
    : config.dovecotAuth
      ? createDovecotAuth(config.dovecotAuth)
      : null;
  const proxyPeers = config.proxyProtocol.length > 0 ? networkSet(config.proxyProtocol) : null;
  // RelayNet clients are our own: their senders are not probed
  const facts = (ip: string, sessionLog: Logger): ClientFacts =>
    createClientFacts(ip, {
      config,
      resolver,
      prober: relayNets.has(ip) ? null : prober,
      isOwnDomain,
      net,
      log: sessionLog,
      ...(spfHostsRecord ? { spfHostsRecord } : {}),
    });
  return {
    config,
    localDomains,
    relayNets,
    proxyPeers,
    accounts,
    aliases,
    domains,
    relayDomains,
    verifier: relayDomains ? (services.verifier?.(config) ?? null) : null,
    verifySkip: networkSet(config.rcptVerifySkip),
    abuse: services.abuse?.(config) ?? NO_ABUSE_GUARD,
    whiteList,
    neverBlocked: (ip) => relayNets.has(ip) || whiteList.has(ip),
    relay,
    policy,
    run,
    route,
    resolver,
    auth,
    facts,
  };
}
