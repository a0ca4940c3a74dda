/**
 * THE table of asmtpd.conf directives (spec asmtpd.md §3). One row per directive: the name
 * users write, the Config field it fills, value form and parser, default (as documented and
 * as computed), section and one line of documentation. The loader, --check, the sample
 * etc/asmtpd.conf, docs/configuration.md and the README reference are all derived from it.
 *
 * Public: DIRECTIVES, findDirective(name), NOT_YET_SUPPORTED.
 *
 * To add a directive: add the field to Config (types.ts), add one row below in its section
 * (a default that depends on another directive must come after it), remove the name from
 * NOT_YET_SUPPORTED if it is there, then regenerate the docs:
 *   npx tsc -b packages/asmtpd && node packages/asmtpd/dist/config/render-cli.js --write
 * The docs-sync test fails until the generated files match.
 */
import { commandValue, lineListValue, listValue, oneValue, type DefaultContext, type Directive } from './directive-kinds.js';
import { parseDnsServer, parseRblLine, parseScore, parseSpfLocal } from './fact-values.js';
import { checkExecutableFile, checkReadableFile } from './files.js';
import { parseCidr, parseIpAddress } from './ip.js';
import type { Cidr } from './types.js';
import {
  parseAbsolutePath, parseAccountName, parseBoolean, parseChoice, parseCommandLine, parseDomainName, parseDurationMs,
  parseInteger, parsePort, parseRelayTarget, parseSeparator, parseSizeBytes, SEPARATOR_CHARACTERS,
} from './values.js';

const SECOND_MS = 1000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
const COUNT_RANGE = { min: 1, max: 1_000_000 };

/** Hostname default: the system host name, lower-cased; warn when it will not do for mail. */
function systemHostnameDefault(ctx: DefaultContext): string {
  const parsed = parseDomainName(ctx.systemHostname);
  if (parsed.kind === 'error') {
    ctx.warn(`Hostname is not set and the system host name ${JSON.stringify(ctx.systemHostname)} is not a valid domain name: set Hostname`);
    return ctx.systemHostname.toLowerCase();
  }
  if (!parsed.value.includes('.')) {
    ctx.warn(`Hostname is not set and the system host name ${JSON.stringify(parsed.value)} is not fully qualified: set Hostname`);
  }
  return parsed.value;
}

const LOOPBACK_NETS: readonly Cidr[] = [
  { family: 4, address: '127.0.0.0', prefix: 8, text: '127.0.0.0/8' },
  { family: 6, address: '::1', prefix: 128, text: '::1' },
];

export const DIRECTIVES: readonly Directive[] = [
  // ── Listening and limits ─────────────────────────────────────────────────────────────
  oneValue('smtpPort', {
    name: 'SMTPPort', section: 'Listening and limits', form: 'port', valueSyntax: 'port',
    defaultText: '25', sample: '25', doc: 'TCP port to listen on; every BindAddr shares it',
    parse: parsePort, default: 25,
  }),
  listValue('bindAddrs', {
    name: 'BindAddr', section: 'Listening and limits', form: 'address', valueSyntax: 'address...',
    defaultText: 'all IPv4 and IPv6 addresses', sample: '192.0.2.25',
    doc: 'address to listen on',
    defaultNote: 'every IPv4 and IPv6 address of the machine',
    parseItem: parseIpAddress, default: () => [],
  }),
  oneValue('hostname', {
    name: 'Hostname', section: 'Listening and limits', form: 'domain', valueSyntax: 'domain',
    defaultText: 'system host name', sample: 'mail.example.org',
    doc: 'our name in the banner, EHLO, Received and X-Avenger',
    defaultNote: 'the system host name (os.hostname()), lower-cased; --check warns when it is not fully qualified',
    parse: parseDomainName, default: systemHostnameDefault,
  }),
  oneValue('etcDir', {
    name: 'EtcDir', section: 'Listening and limits', form: 'path', valueSyntax: 'path',
    defaultText: '/etc/avenger', sample: '/etc/avenger',
    doc: 'system scripts (default, unknown, relay) and data',
    parse: parseAbsolutePath, default: '/etc/avenger',
  }),
  oneValue('dbDir', {
    name: 'DBDir', section: 'Listening and limits', form: 'path', valueSyntax: 'path',
    defaultText: '/var/spool/avenger', sample: '/var/spool/avenger',
    doc: 'the SQLite state database and temporary files (created at start if missing)',
    parse: parseAbsolutePath, default: '/var/spool/avenger',
  }),
  oneValue('maxClients', {
    name: 'MaxClients', section: 'Listening and limits', form: 'integer', valueSyntax: 'integer >= 1',
    defaultText: '500', sample: '500', doc: 'concurrent connections; beyond it: 421 4.7.0 and close',
    parse: (w) => parseInteger(w, COUNT_RANGE), default: 500,
  }),
  oneValue('maxClientsPerIp', {
    name: 'MaxClientsPerIP', section: 'Listening and limits', form: 'integer', valueSyntax: 'integer >= 1',
    defaultText: '10', sample: '10', doc: 'concurrent connections per client address',
    parse: (w) => parseInteger(w, COUNT_RANGE), default: 10,
  }),
  oneValue('maxMsgSizeBytes', {
    name: 'MaxMsgSize', section: 'Listening and limits', form: 'size', valueSyntax: 'size 1k-2G',
    defaultText: '50M', sample: '50M', doc: 'largest message, advertised with SIZE; larger ones get 552 5.3.4',
    parse: (w) => parseSizeBytes(w, { minBytes: 1024, maxBytes: 2 * 1024 ** 3 }), default: 50 * 1024 ** 2,
  }),
  oneValue('maxRcpts', {
    name: 'MaxRcpts', section: 'Listening and limits', form: 'integer', valueSyntax: 'integer >= 1',
    defaultText: '100', sample: '100', doc: 'recipients per transaction; beyond it: 452 4.5.3',
    parse: (w) => parseInteger(w, COUNT_RANGE), default: 100,
  }),
  oneValue('maxErrors', {
    name: 'MaxErrors', section: 'Listening and limits', form: 'integer', valueSyntax: 'integer >= 1',
    defaultText: '10', sample: '10', doc: 'bad commands before 421 and disconnect',
    parse: (w) => parseInteger(w, COUNT_RANGE), default: 10,
  }),
  oneValue('smtpTimeoutMs', {
    name: 'SMTPTimeout', section: 'Listening and limits', form: 'duration', valueSyntax: 'duration 1s-1d',
    defaultText: '5m', sample: '5m', doc: 'time a client has to send each complete command line after our reply (DATA has DataTimeout)',
    parse: (w) => parseDurationMs(w, { minMs: SECOND_MS, maxMs: DAY_MS }), default: 5 * MINUTE_MS,
  }),
  oneValue('dataTimeoutMs', {
    name: 'DataTimeout', section: 'Listening and limits', form: 'duration', valueSyntax: 'duration 1s-1d',
    defaultText: '10m', sample: '10m', doc: 'time a client has to send the whole message, from the 354 reply to the final dot',
    parse: (w) => parseDurationMs(w, { minMs: SECOND_MS, maxMs: DAY_MS }), default: 10 * MINUTE_MS,
  }),
  oneValue('greetingDelayMs', {
    name: 'GreetingDelay', section: 'Listening and limits', form: 'duration', valueSyntax: 'duration 0-5m',
    defaultText: '0', sample: '0',
    doc: 'wait before the banner; a client that talks first is an early talker (CLIENT_PIPELINING=pre-greeting)',
    parse: (w) => parseDurationMs(w, { minMs: 0, maxMs: 5 * MINUTE_MS }), default: 0,
  }),
  oneValue('bareLineEndings', {
    name: 'BareLineEndings', section: 'Listening and limits', form: 'choice', valueSyntax: 'reject|normalize',
    defaultText: 'reject', sample: 'reject',
    doc: 'a bare CR or LF inside DATA: reject the message (554 5.6.0) or normalize it to CRLF',
    parse: (w) => parseChoice(w, ['reject', 'normalize'] as const, { normalise: 'normalize' }), default: 'reject',
  }),

  // ── Recipients and users ─────────────────────────────────────────────────────────────
  oneValue('separator', {
    name: 'Separator', section: 'Recipients and users', form: 'character', valueSyntax: SEPARATOR_CHARACTERS.join('|'),
    defaultText: 'none', sample: '+',
    doc: 'character between a user name and an address extension (bob+lists: user bob, extension lists), also in script names (rcpt+lists); unset = no extensions',
    parse: parseSeparator, default: null,
  }),
  listValue('localDomains', {
    name: 'LocalDomain', section: 'Recipients and users', form: 'domain', valueSyntax: 'domain...',
    defaultText: 'Hostname', sample: 'example.org',
    doc: 'a domain whose users are local accounts',
    defaultNote: 'the Hostname',
    parseItem: parseDomainName, default: (ctx) => [ctx.resolved('hostname')],
  }),
  oneValue('domainFile', {
    name: 'DomainFile', section: 'Recipients and users', form: 'path', valueSyntax: 'path',
    defaultText: 'none', sample: '/etc/avenger/domains',
    doc: 'virtual domains, lines `domain user[+prefix]`: anything@domain is user with extension [prefix+]anything, joined by Separator (+ when unset); re-read when it changes',
    parse: parseAbsolutePath, default: null,
    checkFiles: (path) => (path === null ? [] : checkReadableFile(path)),
  }),
  oneValue('aliasFile', {
    name: 'AliasFile', section: 'Recipients and users', form: 'path', valueSyntax: 'path',
    defaultText: 'none', sample: '/etc/aliases',
    doc: 'aliases(5)-format file; an alias that resolves to one local user is policy-checked as that user; re-read when it changes',
    parse: parseAbsolutePath, default: null,
    checkFiles: (path) => (path === null ? [] : checkReadableFile(path)),
  }),
  oneValue('passwdFile', {
    name: 'PasswdFile', section: 'Recipients and users', form: 'path', valueSyntax: 'path',
    defaultText: 'system (getpwnam)', sample: '/etc/avenger/passwd',
    doc: 'passwd(5)-format file of accounts used instead of the system database (virtual users, tests)',
    parse: parseAbsolutePath, default: null,
    checkFiles: (path) => (path === null ? [] : checkReadableFile(path)),
  }),
  oneValue('avengerUser', {
    name: 'AvengerUser', section: 'Recipients and users', form: 'account', valueSyntax: 'user',
    defaultText: 'avenger', sample: 'avenger',
    doc: 'account that runs EtcDir/unknown, EtcDir/relay, EtcDir/default and the policy of root and of redirects to its addresses (checked at start, not by --check)',
    parse: parseAccountName, default: 'avenger',
  }),
  oneValue('avengerTimeoutMs', {
    name: 'AvengerTimeout', section: 'Recipients and users', form: 'duration', valueSyntax: 'duration 1s-1h',
    defaultText: '60s', sample: '60s',
    doc: 'a policy script or body test still running then is killed and the recipient or message deferred (451 4.3.0)',
    parse: (w) => parseDurationMs(w, { minMs: SECOND_MS, maxMs: HOUR_MS }), default: 60 * SECOND_MS,
  }),
  listValue('relayNets', {
    name: 'RelayNet', section: 'Recipients and users', form: 'network', valueSyntax: 'network...',
    defaultText: '127.0.0.0/8 ::1', sample: '127.0.0.0/8 ::1',
    doc: 'client networks that may relay to any domain (still policy-checked by EtcDir/relay)',
    defaultNote: '127.0.0.0/8 and ::1; a RelayNet line replaces both, so list them again to keep them',
    parseItem: parseCidr, default: () => LOOPBACK_NETS.map((net) => ({ ...net })),
  }),

  // ── Privileges and script limits ───────────────────────────────────────────────────
  oneValue('daemonUser', {
    name: 'DaemonUser', section: 'Privileges and script limits', form: 'account', valueSyntax: 'user',
    defaultText: 'asmtpd', sample: 'asmtpd',
    doc: 'account the SMTP process runs as after start (as root); owns DBDir and HoldQueue, runs no script; a missing default-named account is created (see docs/security.md)',
    parse: parseAccountName, default: 'asmtpd',
  }),
  oneValue('netFactsUser', {
    name: 'NetFactsUser', section: 'Privileges and script limits', form: 'account', valueSyntax: 'user',
    defaultText: 'asmtpd-net', sample: 'asmtpd-net',
    doc: 'account of the network-facts process (SYN capture, NetPath), which keeps CAP_NET_RAW and nothing else; a missing default-named account is created',
    parse: parseAccountName, default: 'asmtpd-net',
  }),
  oneValue('avengerProcessLimit', {
    name: 'AvengerProcessLimit', section: 'Privileges and script limits', form: 'integer', valueSyntax: 'integer 0-100000',
    defaultText: '512', sample: '512',
    doc: "processes a script's user may have at once while a script of theirs forks (RLIMIT_NPROC); 0 = no limit",
    parse: (w) => parseInteger(w, { min: 0, max: 100_000 }), default: 512,
  }),
  oneValue('avengerCpuLimitMs', {
    name: 'AvengerCPULimit', section: 'Privileges and script limits', form: 'duration', valueSyntax: 'duration 1s-1h',
    defaultText: '60s', sample: '60s',
    doc: 'CPU time of each script or body-test process (RLIMIT_CPU); past it the process is killed',
    parse: (w) => parseDurationMs(w, { minMs: SECOND_MS, maxMs: HOUR_MS }), default: 60 * SECOND_MS,
  }),
  oneValue('avengerMemoryLimitBytes', {
    name: 'AvengerMemoryLimit', section: 'Privileges and script limits', form: 'size', valueSyntax: 'size 64M-1024G',
    defaultText: '1G', sample: '1G',
    doc: 'heap and private writable memory of each script or body-test process (RLIMIT_DATA)',
    parse: (w) => parseSizeBytes(w, { minBytes: 64 * 1024 ** 2, maxBytes: 1024 ** 4 }), default: 1024 ** 3,
  }),
  oneValue('avengerFileSizeLimitBytes', {
    name: 'AvengerFileSizeLimit', section: 'Privileges and script limits', form: 'size', valueSyntax: 'size 1M-1024G',
    defaultText: '512M', sample: '512M',
    doc: 'largest file a script or body test may write (RLIMIT_FSIZE)',
    parse: (w) => parseSizeBytes(w, { minBytes: 1024 ** 2, maxBytes: 1024 ** 4 }), default: 512 * 1024 ** 2,
  }),
  oneValue('avengerOpenFilesLimit', {
    name: 'AvengerOpenFilesLimit', section: 'Privileges and script limits', form: 'integer', valueSyntax: 'integer 16-1048576',
    defaultText: '1024', sample: '1024',
    doc: 'open descriptors of each script or body-test process (RLIMIT_NOFILE)',
    parse: (w) => parseInteger(w, { min: 16, max: 1_048_576 }), default: 1024,
  }),

  // ── Delivery of accepted mail ────────────────────────────────────────────────────────
  oneValue('relayHost', {
    name: 'RelayHost', section: 'Delivery of accepted mail', form: 'target', valueSyntax: 'target',
    defaultText: 'none', sample: '127.0.0.1:10025',
    doc: 'the downstream MTA: host:port (SMTP), lmtp:host:port or unix:/path (LMTP)',
    parse: parseRelayTarget, default: null,
  }),
  commandValue('sendmail', {
    name: 'Sendmail', section: 'Delivery of accepted mail', form: 'command', valueSyntax: 'command...',
    defaultText: 'none', sample: '/usr/sbin/sendmail -oi -f %s --',
    doc: 'command run per message instead of RelayHost (%s = sender, recipients appended); exit 0 = accepted, 75 = try again, other = refused',
    parse: parseCommandLine, default: null,
    checkFiles: (argv) => (argv?.[0] === undefined ? [] : checkExecutableFile(argv[0])),
  }),
  oneValue('holdQueue', {
    name: 'HoldQueue', section: 'Delivery of accepted mail', form: 'path', valueSyntax: 'path',
    defaultText: 'DBDir/queue', sample: '/var/spool/avenger/queue',
    doc: 'Maildir keeping accepted mail when neither RelayHost nor Sendmail is set, or (HoldOnFailure yes) while the MTA is down',
    defaultNote: 'the directory queue inside DBDir',
    parse: parseAbsolutePath, default: (ctx) => `${ctx.resolved('dbDir').replace(/\/$/, '')}/queue`,
  }),
  oneValue('holdOnFailure', {
    name: 'HoldOnFailure', section: 'Delivery of accepted mail', form: 'boolean', valueSyntax: 'boolean',
    defaultText: 'no', sample: 'no',
    doc: 'with yes, a downstream temporary failure puts the message in HoldQueue (fsynced) and answers 250',
    parse: parseBoolean, default: false,
  }),
  oneValue('relayTimeoutMs', {
    name: 'RelayTimeout', section: 'Delivery of accepted mail', form: 'duration', valueSyntax: 'duration 1s-1h',
    defaultText: '5m', sample: '5m',
    doc: 'time limit for the downstream: to connect, for each reply, for the whole transfer',
    parse: (w) => parseDurationMs(w, { minMs: SECOND_MS, maxMs: HOUR_MS }), default: 5 * MINUTE_MS,
  }),
  oneValue('relayConnections', {
    name: 'RelayConnections', section: 'Delivery of accepted mail', form: 'integer', valueSyntax: 'integer 1-1000',
    defaultText: '20', sample: '20',
    doc: 'downstream sessions at most (RelayHost); a transaction holds one from its first accepted RCPT (the downstream answers each RCPT) to its end; when all are held, RCPT takes the policy\'s word alone and the message is delivered after DATA',
    parse: (w) => parseInteger(w, { min: 1, max: 1000 }), default: 20,
  }),

  // ── DNS ──────────────────────────────────────────────────────────────────────────────
  oneValue('dnsResolver', {
    name: 'DNSResolver', section: 'DNS', form: 'choice', valueSyntax: 'tangerine|system',
    defaultText: 'tangerine', sample: 'tangerine',
    doc: 'tangerine (DNS over HTTPS, answers cached for their TTL) or system (node\'s resolver over UDP/TCP to the machine\'s resolver, which caches: e.g. a local unbound)',
    defaultNote: 'tangerine in a configuration file; the embedded default (no file) uses system, the machine\'s own resolver',
    parse: (w) => parseChoice(w, ['tangerine', 'system'] as const), default: 'tangerine',
  }),
  listValue('dnsServers', {
    name: 'DNSServer', section: 'DNS', form: 'server', valueSyntax: 'server...',
    defaultText: "the resolver's defaults", sample: '127.0.0.1:53',
    doc: 'a DoH server (tangerine) or DNS server (system) to ask instead of the defaults',
    defaultNote: "tangerine's public DoH servers, or the nameservers of /etc/resolv.conf for system",
    parseItem: parseDnsServer, default: () => [],
  }),
  oneValue('dnsProtocol', {
    name: 'DNSProtocol', section: 'DNS', form: 'choice', valueSyntax: 'http|https',
    defaultText: 'https', sample: 'https', doc: 'protocol tangerine speaks to DNSServer',
    parse: (w) => parseChoice(w, ['http', 'https'] as const), default: 'https',
  }),
  oneValue('dnsTimeoutMs', {
    name: 'DNSTimeout', section: 'DNS', form: 'duration', valueSyntax: 'duration 1s-1m',
    defaultText: '5s', sample: '5s', doc: 'time limit of each lookup; a lookup that takes longer is a temporary failure',
    parse: (w) => parseDurationMs(w, { minMs: SECOND_MS, maxMs: MINUTE_MS }), default: 5 * SECOND_MS,
  }),
  oneValue('allowDnsFailures', {
    name: 'AllowDNSFailures', section: 'DNS', form: 'boolean', valueSyntax: 'boolean',
    defaultText: 'no', sample: 'no',
    doc: 'with no, a temporary failure of the client\'s reverse lookup or of the sender\'s SPF check makes the system default 451 4.4.3',
    parse: parseBoolean, default: false,
  }),

  // ── Facts ────────────────────────────────────────────────────────────────────────────
  commandValue('spfLocal', {
    name: 'SPFLocal', section: 'Facts', form: 'mechanisms', valueSyntax: 'mechanisms...',
    defaultText: 'none', sample: 'include:spf.trusted-forwarder.org',
    doc: 'SPF mechanisms evaluated before the sender policy\'s final all or default (trusted forwarders)',
    parse: parseSpfLocal, default: null,
  }),
  oneValue('spfHostsFile', {
    name: 'SPFHostsFile', section: 'Facts', form: 'path', valueSyntax: 'path',
    defaultText: 'none', sample: '/etc/avenger/spfhosts',
    doc: 'lines `domain spf-record` used for domains that publish no SPF record; re-read when it changes',
    parse: parseAbsolutePath, default: null,
    checkFiles: (path) => (path === null ? [] : checkReadableFile(path)),
  }),
  oneValue('spfRejectFail', {
    name: 'SPFRejectFail', section: 'Facts', form: 'boolean', valueSyntax: 'boolean',
    defaultText: 'no', sample: 'no', doc: 'with yes, SPF fail of MAIL FROM makes the system default 550 5.7.23',
    parse: parseBoolean, default: false,
  }),
  lineListValue('rbls', {
    name: 'RBL', section: 'Facts', form: 'dnsbl', valueSyntax: 'zone [score [reason]]',
    defaultText: 'none', sample: 'zen.spamhaus.org 1',
    doc: 'a DNSBL queried at connect for the client address (reversed-ip.zone)',
    parseLine: parseRblLine, default: () => [],
  }),
  oneValue('rblThreshold', {
    name: 'RBLThreshold', section: 'Facts', form: 'number', valueSyntax: 'number 0-1000',
    defaultText: '1', sample: '1', doc: 'total score of the listing zones at which the system default is 550 5.7.1 with their reasons',
    parse: parseScore, default: 1,
  }),
  oneValue('smtpCallback', {
    name: 'SMTPCB', section: 'Facts', form: 'boolean', valueSyntax: 'boolean',
    defaultText: 'yes', sample: 'yes',
    doc: 'bounce probe: ask the sender domain\'s MX whether it would take a bounce (MAIL FROM:<> RCPT TO:<sender>) → SENDER_BOUNCERES',
    parse: parseBoolean, default: true,
  }),
  oneValue('smtpCallbackTimeoutMs', {
    name: 'SMTPCBTimeout', section: 'Facts', form: 'duration', valueSyntax: 'duration 1s-5m',
    defaultText: '30s', sample: '30s', doc: 'time limit of the whole bounce probe; past it the result is a temporary failure',
    parse: (w) => parseDurationMs(w, { minMs: SECOND_MS, maxMs: 5 * MINUTE_MS }), default: 30 * SECOND_MS,
  }),
  oneValue('smtpCallbackCacheTtlMs', {
    name: 'SMTPCBCacheTTL', section: 'Facts', form: 'duration', valueSyntax: 'duration 0-30d',
    defaultText: '1d', sample: '1d', doc: 'how long a probe result is remembered, per sender address and per domain (temporary failures at most 10m)',
    parse: (w) => parseDurationMs(w, { minMs: 0, maxMs: 30 * DAY_MS }), default: DAY_MS,
  }),
  oneValue('synFp', {
    name: 'SynFP', section: 'Facts', form: 'boolean', valueSyntax: 'boolean',
    defaultText: 'yes with CAP_NET_RAW', sample: 'yes',
    doc: 'capture each client\'s TCP SYN (a small privileged capture process) → CLIENT_SYNFP, CLIENT_SYNOS, CLIENT_NETHOPS',
    defaultNote: 'on when asmtpd starts as root (or with CAP_NET_RAW), else off with one log line',
    parse: parseBoolean, default: null,
  }),
  oneValue('synFpDb', {
    name: 'SynFPDB', section: 'Facts', form: 'path', valueSyntax: 'path',
    defaultText: 'the shipped pf.os', sample: '/etc/avenger/pf.os',
    doc: 'SYN fingerprint database in pf.os format',
    defaultNote: 'share/pf.os of the asmtpd package (OpenBSD pf.os 1.25)',
    parse: parseAbsolutePath, default: null,
    checkFiles: (path) => (path === null ? [] : checkReadableFile(path)),
  }),
  oneValue('netPath', {
    name: 'NetPath', section: 'Facts', form: 'boolean', valueSyntax: 'boolean',
    defaultText: 'no', sample: 'no',
    doc: 'trace the route to each client with TTL-limited probes → CLIENT_NETHOPS, CLIENT_NETPATH (cached per /24, /48)',
    parse: parseBoolean, default: false,
  }),
  oneValue('netPathMaxHops', {
    name: 'NetPathMaxHops', section: 'Facts', form: 'integer', valueSyntax: 'integer 1-64',
    defaultText: '30', sample: '30', doc: 'longest route NetPath traces',
    parse: (w) => parseInteger(w, { min: 1, max: 64 }), default: 30,
  }),

  // ── Logging ──────────────────────────────────────────────────────────────────────────
  oneValue('logLevel', {
    name: 'LogLevel', section: 'Logging', form: 'choice', valueSyntax: 'debug|info|warn|error',
    defaultText: 'info', sample: 'info', doc: 'least severe level written to the log',
    parse: (w) => parseChoice(w, ['debug', 'info', 'warn', 'error'] as const, { warning: 'warn' }), default: 'info',
  }),
];

/**
 * Directives of the spec that this version does not implement yet: naming one is still an
 * error, but the message says so instead of "unknown". Remove a name when its row is added.
 */
export const NOT_YET_SUPPORTED: readonly string[] = [
  'TLSCert', 'TLSKey', 'TLSMinVersion', 'AuthFile', 'DovecotAuth', 'InsecureAuth',
];

const BY_LOWER_NAME = new Map(DIRECTIVES.map((d) => [d.name.toLowerCase(), d]));

/** The directive called `name` (case-insensitive), or undefined. */
export function findDirective(name: string): Directive | undefined {
  return BY_LOWER_NAME.get(name.toLowerCase());
}

