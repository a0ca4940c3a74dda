/**
 * The parsed, validated configuration the daemon runs on (asmtpd.conf, spec asmtpd.md §3).
 * Every field is filled: defaults are applied by the loader from the directive table.
 * Names users see (SMTPPort, MaxMsgSize…) map to these camelCase fields in directives.ts only.
 */
export interface Cidr {
  /** 4 or 6 */
  family: 4 | 6;
  /** network address as text, e.g. "127.0.0.0" or "::1" */
  address: string;
  prefix: number;
  /** original text, for logs and --check */
  text: string;
}

/** Where accepted mail goes (RelayHost). */
/** DovecotAuth: a Dovecot auth service's client socket */
export type DovecotAuthTarget = { kind: 'unix'; path: string } | { kind: 'inet'; host: string; port: number };

export type RelayTarget =
  | { kind: 'smtp'; host: string; port: number }
  | { kind: 'lmtp'; host: string; port: number }
  | { kind: 'lmtp-unix'; path: string };

/** One backend of a RelayDomain (SMTP, port 25 when omitted). */
export interface BackendHost {
  /** an IP address or a host name */
  host: string;
  port: number;
}

/** RelayDomain DOMAIN HOST[:PORT][,FALLBACK…]: mail for DOMAIN is verified against and delivered to these. */
export interface RelayDomainRoute {
  /** lower case, no trailing dot */
  domain: string;
  /** tried in order: the first is the primary, the others are fallbacks while it is down */
  backends: BackendHost[];
}

/** A DNSServer entry. */
export interface DnsServer {
  host: string;
  /** null = the protocol's port (53, or 80/443 for DoH) */
  port: number | null;
  /** as written, for logs */
  text: string;
}

/** An address and port to listen on (MetricsListen). */
export interface ListenAddress {
  /** an IPv4 or IPv6 address (normalised) */
  host: string;
  port: number;
  /** as written, for logs */
  text: string;
}

/** An RBL line: `RBL zone [score [reason]]`. */
export interface RblList {
  zone: string;
  score: number;
  /** the reason when the zone publishes no TXT; null = `listed by ZONE` */
  reason: string | null;
}

export interface Config {
  /** absolute path of the file this came from */
  file: string;

  // TLS
  /** PEM certificate chains, each with the key of the same index in tlsKeys (STARTTLS when any) */
  tlsCerts: string[];
  tlsKeys: string[];
  tlsMinVersion: 'TLSv1.2' | 'TLSv1.3';
  /** SMTP AUTH against this Dovecot passwd-file (config/auth-file.ts); null = no AUTH */
  authFile: string | null;
  /** SMTP AUTH against a Dovecot auth service (auth/dovecot-auth.ts); null = none */
  dovecotAuth: DovecotAuthTarget | null;
  /** offer AUTH before STARTTLS too */
  insecureAuth: boolean;
  /** failed AUTH attempts per connection and per client IP (in a window) before 421 4.7.0 */
  authMaxFailures: number;

  // Listening and limits
  smtpPort: number;
  /** empty = all IPv4 and IPv6 addresses */
  bindAddrs: string[];
  hostname: string;
  etcDir: string;
  dbDir: string;
  maxClients: number;
  maxClientsPerIp: number;
  /** SMTP worker processes (1: the single process of before) */
  workers: number;
  maxMsgSizeBytes: number;
  maxRcpts: number;
  maxErrors: number;
  smtpTimeoutMs: number;
  dataTimeoutMs: number;
  greetingDelayMs: number;
  /** what to do with a bare CR or LF inside DATA: reject (554 5.6.0) or normalise to CRLF */
  bareLineEndings: 'reject' | 'normalize';
  /** ProxyProtocol: peers whose connections start with a PROXY header (v1 or v2); empty = none */
  proxyProtocol: Cidr[];

  // Recipients and users
  /** one of values.ts SEPARATOR_CHARACTERS; null = addresses have no extensions */
  separator: string | null;
  /** lower-case, without trailing dot; defaults to [hostname] */
  localDomains: string[];
  /** virtual domains (recipients/domains.ts); null = none */
  domainFile: string | null;
  /** aliases(5) file (recipients/aliases.ts); null = no aliases */
  aliasFile: string | null;
  /** null = system account database */
  passwdFile: string | null;
  /** account of the system scripts, lower-case; its existence is checked by the daemon at start */
  avengerUser: string;
  /** a policy script or body test still running then is killed (and the recipient deferred) */
  avengerTimeoutMs: number;
  relayNets: Cidr[];

  // Privileges and script limits (fixed at start: the runner's settings)
  /** account of the SMTP process (owns DBDir and HoldQueue), lower-case */
  daemonUser: string;
  /** account of the network-facts process (holds CAP_NET_RAW only), lower-case */
  netFactsUser: string;
  /** RLIMIT_NPROC of a script's user; 0 = none */
  avengerProcessLimit: number;
  /** RLIMIT_CPU of every script and body test process */
  avengerCpuLimitMs: number;
  /** RLIMIT_DATA of every script and body test process */
  avengerMemoryLimitBytes: number;
  /** RLIMIT_FSIZE of every script and body test process */
  avengerFileSizeLimitBytes: number;
  /** RLIMIT_NOFILE of every script and body test process */
  avengerOpenFilesLimit: number;

  // Delivery
  relayHost: RelayTarget | null;
  /** argv template of the Sendmail directive, e.g. ["/usr/sbin/sendmail","-oi","-f","%s","--"] */
  sendmail: string[] | null;
  /** Maildir of the hold queue; default DBDir/queue */
  holdQueue: string;
  holdOnFailure: boolean;
  /** seconds a relay attempt may take (connect, each reply, whole transfer) */
  relayTimeoutMs: number;
  /** downstream sessions at most (each client transaction holds one from its first RCPT to its end) */
  relayConnections: number;

  // Relay domains and recipient verification (recipients/relay-domains.ts, relay/recipient-verifier.ts)
  relayDomains: RelayDomainRoute[];
  /** sendmail mailertable file of further relay domains (recipients/mailertable.ts) */
  mailertable: string | null;
  rcptVerifySubdomains: boolean;
  rcptVerifyValidTtlMs: number;
  rcptVerifyInvalidTtlMs: number;
  rcptVerifyBackoffMs: number;
  /** true: a backend that cannot be asked gives 451 4.4.1; false: accept unverified */
  rcptVerifyTempfail: boolean;
  rcptVerifySkip: Cidr[];
  rcptVerifyTimeoutMs: number;
  /** verification sessions at most per backend */
  rcptVerifyConnections: number;

  // Abuse blocking (issue 19: net/blocking.ts, daemon/blocklist.ts)
  /** null = off: unknown recipients are not counted toward a block */
  blockUnknownRcpts: { count: number; windowMs: number } | null;
  /** the prefix lengths counts and blocks aggregate over */
  blockNetmask: { v4: number; v6: number };
  blockTimeMs: number;
  blockTimeMaxMs: number;
  /** a blocked client's banner: 421 4.7.1 (tempfail) or 554 5.7.1 (reject), then the close */
  blockAtBanner: 'tempfail' | 'reject';
  /** networks never counted nor blocked (besides RelayNet and authenticated clients) */
  whiteList: Cidr[];
  /** a file of further networks, one or more per line, `#` comments; re-read on SIGHUP */
  whiteListFile: string | null;

  // DNS
  dnsResolver: 'tangerine' | 'system';
  /** `host:port` texts; empty = the resolver's own defaults */
  dnsServers: DnsServer[];
  dnsProtocol: 'http' | 'https';
  dnsTimeoutMs: number;
  allowDnsFailures: boolean;

  // Facts
  /** SPF mechanisms evaluated before the sender policy's final all/default; null = none */
  spfLocal: string | null;
  spfHostsFile: string | null;
  spfRejectFail: boolean;
  dynamicNameReject: boolean;
  rbls: RblList[];
  rblThreshold: number;
  smtpCallback: boolean;
  smtpCallbackTimeoutMs: number;
  smtpCallbackCacheTtlMs: number;
  /** capture SYN fingerprints; null = when the daemon has CAP_NET_RAW */
  synFp: boolean | null;
  /** pf.os-format files, matched as one in this order; empty = the shipped ones (share/pf.os.modern, share/pf.os) */
  synFpDb: string[];
  netPath: boolean;
  netPathMaxHops: number;

  // Logging
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** the Prometheus endpoint (GET /metrics); null = none */
  metricsListen: ListenAddress | null;
}
