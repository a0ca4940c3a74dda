/**
 * metrics.ts — the daemon's Prometheus figures (spec asmtpd.md §7; docs/metrics.md lists every
 * metric with its labels). The only module that imports prom-client: every layer records through
 * the named functions of `Metrics`, never through prom-client itself.
 *
 *   metrics                    the daemon's one set of figures (what MetricsListen serves)
 *   createMetrics() -> Metrics a set of its own (unit tests)
 *
 * Recording is always on and cheap: a counter is a number in a map, handed to prom-client only
 * when scraped (prom-client hashes the label object at every inc(), a child included); histograms
 * observe through prom-client with a label object made once per label set. What costs more is
 * done only when served: the process figures (`startProcessMetrics()`, prom-client's default
 * collectors, called by the listener) and the scrape-time values given by `watch()` (open
 * connections, the hold queue's size, counted when scraped).
 *
 * Label values come from small fixed sets (the unions below), never from a client: a client
 * cannot grow the number of series.
 */
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What a reply answered: the banner, a command (lower case), the message after DATA's 354, or nothing (a timeout). */
export type ReplyCommand =
  | 'connect'
  | 'helo'
  | 'ehlo'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'message'
  | 'rset'
  | 'noop'
  | 'quit'
  | 'vrfy'
  | 'expn'
  | 'help'
  | 'starttls'
  | 'auth'
  | 'other'
  | 'none';

const KNOWN_VERBS = new Set<ReplyCommand>([
  'helo',
  'ehlo',
  'mail',
  'rcpt',
  'data',
  'rset',
  'noop',
  'quit',
  'vrfy',
  'expn',
  'help',
  'starttls',
  'auth',
]);

/** The command label of a command line: its verb if it is one we name, else `other`. */
export function commandLabel(line: string): ReplyCommand {
  const verb = /^[A-Za-z]+(?![A-Za-z0-9])/.exec(line)?.[0]?.toLowerCase() ?? '';
  return KNOWN_VERBS.has(verb as ReplyCommand) ? (verb as ReplyCommand) : 'other';
}

export type RefusalReason = 'max-clients' | 'max-per-ip' | 'shutting-down' | 'blocked';
/** why a network was blocked (issue 19): counted unknown recipients */
export type BlockReason = 'unknown-rcpts';
/** an AUTH answered: 235, 535, 421 at AuthMaxFailures, or the backend failed (451) */
export type AuthResult = 'ok' | 'failed' | 'limit' | 'error';
/** what the client heard at RCPT */
export type DecisionOutcome = 'accepted' | 'deferred' | 'rejected';
/**
 * who decided: the route (relaying denied, postmaster, no such user without a script), a script
 * (the recipient's or EtcDir's unknown/relay), the system default (MAIL_ERROR, EtcDir/default, or
 * accept), the session's cache of decisions, the downstream asked at RCPT, a protocol rule (a
 * parameter we do not take, a body-test group), or an error (a script that failed or timed out,
 * AvengerUser missing)
 */
export type DecisionSource = 'route' | 'script' | 'system-default' | 'cache' | 'downstream' | 'protocol' | 'error';
export type FactKind = 'reverse' | 'rbl' | 'spf' | 'spf_helo' | 'bounce' | 'syn' | 'route';
export type RelayResult = 'accepted' | 'held' | 'partial' | 'rejected' | 'deferred';
/** RCPT_VERIFY of a relay-domain recipient (relay/recipient-verifier.ts, smtp/commands/rcpt.ts) */
export type VerifyResult =
  | 'valid'
  | 'cached-valid'
  | 'invalid'
  | 'cached-invalid'
  | 'deferred'
  | 'tempfail'
  | 'unverified'
  | 'skipped';
/** what a backend question ended in (relay/backend-verify.ts) */
export type VerifyAnswer = 'valid' | 'invalid' | 'deferred' | 'unreachable';
export type MessageOutcome = 'accepted' | 'deferred' | 'rejected' | 'discarded' | 'abandoned';
export type DnsType = 'A' | 'AAAA' | 'MX' | 'PTR' | 'TXT';
export type DnsCache = 'answer' | 'negative';

/** Figures read when served. */
export interface MetricsSources {
  /** connections admitted and still open */
  connections?: () => number;
  /** messages in the hold queue (new/ and cur/) */
  holdQueue?: () => Promise<number>;
}

export interface Metrics {
  /** a TCP connection was accepted (before the limits) */
  connectionAccepted(): void;
  /** a connection got 421 before the banner */
  connectionRefused(reason: RefusalReason): void;
  /** a network was blocked (daemon/blocklist.ts) */
  blockAdded(reason: BlockReason): void;
  /** a blocked client's open session was cut at RCPT */
  blockCut(): void;
  /** a reply went out */
  reply(command: ReplyCommand, code: number): void;
  /** an AUTH answered (commands/auth.ts) */
  auth(result: AuthResult): void;
  /** RCPT answered */
  rcptDecision(outcome: DecisionOutcome, source: DecisionSource): void;
  /** one policy script run (outcome: the Outcome kind it gave: accept, reject, defer, failed…) */
  scriptRun(outcome: string, ms: number): void;
  /** a fact settled, in ms since it started; failed: a temporary failure */
  fact(kind: FactKind, ms: number, failed: boolean): void;
  /** one delivery to the downstream (or the hold queue) */
  relay(result: RelayResult, ms: number): void;
  /** the end of a message (after DATA) */
  message(outcome: MessageOutcome): void;
  /** a relay-domain recipient's verification at RCPT, by its RCPT_VERIFY */
  rcptVerify(result: VerifyResult): void;
  /** the verification cache looked up: hit (a live entry) or miss */
  rcptVerifyCache(hit: boolean): void;
  /** one question to the backends (this process's own, not one shared), in ms */
  rcptVerifyBackend(answer: VerifyAnswer, ms: number): void;
  /** a DNS lookup asked by a fact; failed: a temporary failure (not NXDOMAIN or NODATA) */
  dnsLookup(type: DnsType, failed: boolean): void;
  /** a DNS lookup answered from a cache of ours (tangerine's; the system resolver caches outside) */
  dnsCacheHit(cache: DnsCache): void;
  /** the version shown by asmtpd_info */
  setVersion(version: string): void;
  /** set (or replace) the figures read when served */
  watch(sources: MetricsSources): void;
  /** prom-client's process and Node figures (CPU, memory, event loop, GC); once */
  startProcessMetrics(): void;
  /** the Prometheus text exposition */
  render(): Promise<string>;
  /** this process's figures as data (a worker's answer to the primary, Workers N) */
  snapshot(): Promise<unknown>;
  /** the text exposition of several processes' snapshots: counters summed, asmtpd_info once */
  renderMerged(snapshots: readonly unknown[]): Promise<string>;
  readonly contentType: string;
}

const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** prom-client's default gauges whose names end in _total (their sum by type stays) */
const TOTAL_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

type Labels = Record<string, string>;

/** A label object per set of values, made once (the key: the values joined). */
function labelSets(names: readonly string[]): (values: readonly string[]) => { key: string; labels: Labels } {
  const sets = new Map<string, { key: string; labels: Labels }>();
  return (values) => {
    const key = values.join('\0');
    let set = sets.get(key);
    if (set === undefined) {
      set = { key, labels: Object.fromEntries(names.map((n, i) => [n, values[i] ?? ''])) };
      sets.set(key, set);
    }
    return set;
  };
}

/**
 * A counter kept as plain numbers per label set, given to prom-client when collected: inc()
 * costs a join and a map lookup.
 */
function countedBy(
  registers: Registry[],
  name: string,
  help: string,
  labelNames: readonly string[],
): (...values: string[]) => void {
  const counts = new Map<string, { labels: Labels; n: number }>();
  const setOf = labelSets(labelNames);
  new Counter({
    name,
    help,
    labelNames,
    registers,
    collect() {
      this.reset();
      for (const { labels, n } of counts.values()) this.inc(labels, n);
    },
  });
  return (...values) => {
    const { key, labels } = setOf(values);
    const c = counts.get(key);
    if (c === undefined) counts.set(key, { labels, n: 1 });
    else c.n++;
  };
}

/** A histogram observed through prom-client, its label objects made once. */
function timedBy(
  registers: Registry[],
  name: string,
  help: string,
  labelName: string,
): (value: string, seconds: number) => void {
  const h = new Histogram({ name, help, labelNames: [labelName], buckets: SECONDS_BUCKETS, registers });
  const setOf = labelSets([labelName]);
  return (value, seconds) => h.observe(setOf([value]).labels, seconds);
}

function replyClass(code: number): string {
  const c = Math.floor(code / 100);
  return c >= 2 && c <= 5 ? `${c}xx` : 'other';
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];
  let sources: MetricsSources = {};

  const info = new Gauge({
    name: 'asmtpd_info',
    help: 'the version of asmtpd (always 1)',
    labelNames: ['version'],
    registers,
    aggregator: 'first',
  });
  const accepted = countedBy(
    registers,
    'asmtpd_connections_total',
    'TCP connections accepted (before the connection limits)',
    [],
  );
  const refused = countedBy(
    registers,
    'asmtpd_connections_refused_total',
    'connections refused with 421 before the banner, by reason',
    ['reason'],
  );
  const blocks = countedBy(registers, 'asmtpd_blocks_total', 'networks blocked, by reason', ['reason']);
  const cuts = countedBy(
    registers,
    'asmtpd_block_cuts_total',
    'open sessions of a client blocked meanwhile, cut with 421 4.7.1 at their next RCPT',
    [],
  );
  const auths = countedBy(registers, 'asmtpd_auth_total', 'SMTP AUTH attempts answered, by result', ['result']);
  new Gauge({
    name: 'asmtpd_connections_open',
    help: 'connections admitted and still open',
    registers,
    collect() {
      this.set(sources.connections?.() ?? 0);
    },
  });
  const replies = countedBy(
    registers,
    'asmtpd_replies_total',
    'replies sent, by the command answered and the class of the reply code',
    ['command', 'class'],
  );
  const decisions = countedBy(
    registers,
    'asmtpd_rcpt_decisions_total',
    'RCPT TO answered, by what the client heard and who decided',
    ['outcome', 'source'],
  );
  const scripts = timedBy(
    registers,
    'asmtpd_script_run_seconds',
    'run time of policy scripts (the runner round trip), by the outcome they gave',
    'outcome',
  );
  const facts = timedBy(
    registers,
    'asmtpd_fact_seconds',
    'time from the start of a fact to its value, by kind',
    'kind',
  );
  const factFailures = countedBy(
    registers,
    'asmtpd_fact_failures_total',
    'facts that ended in a temporary failure, by kind',
    ['kind'],
  );
  const relays = timedBy(
    registers,
    'asmtpd_relay_seconds',
    'deliveries to the downstream (or the hold queue), by result',
    'result',
  );
  const messages = countedBy(registers, 'asmtpd_messages_total', 'messages at the end of DATA, by outcome', [
    'outcome',
  ]);
  const verifications = countedBy(
    registers,
    'asmtpd_rcpt_verify_total',
    'relay-domain recipients verified at RCPT, by RCPT_VERIFY',
    ['result'],
  );
  const verifyCache = countedBy(
    registers,
    'asmtpd_rcpt_verify_cache_total',
    'lookups of the recipient verification cache, by hit or miss',
    ['lookup'],
  );
  const verifyBackend = timedBy(
    registers,
    'asmtpd_rcpt_verify_backend_seconds',
    'questions to a relay domain backend (MAIL FROM:<>, RCPT TO), by answer',
    'answer',
  );
  const dnsLookups = countedBy(registers, 'asmtpd_dns_lookups_total', 'DNS lookups, by record type', ['type']);
  const dnsFailures = countedBy(
    registers,
    'asmtpd_dns_failures_total',
    'DNS lookups that failed temporarily (not NXDOMAIN or NODATA), by record type',
    ['type'],
  );
  const dnsHits = countedBy(
    registers,
    'asmtpd_dns_cache_hits_total',
    'DNS lookups answered from the cache (tangerine resolver), by cache',
    ['cache'],
  );
  new Gauge({
    name: 'asmtpd_hold_queue_messages',
    help: 'messages in the hold queue',
    registers,
    // every worker counts the same directory
    aggregator: 'max',
    async collect() {
      this.set(sources.holdQueue ? await sources.holdQueue().catch(() => Number.NaN) : 0);
    },
  });
  let processStarted = false;

  return {
    connectionAccepted: () => accepted(),
    connectionRefused: (reason) => refused(reason),
    blockAdded: (reason) => blocks(reason),
    blockCut: () => cuts(),
    reply: (command, code) => replies(command, replyClass(code)),
    auth: (result) => auths(result),
    rcptDecision: (outcome, source) => decisions(outcome, source),
    scriptRun: (outcome, ms) => scripts(outcome, ms / 1000),
    fact(kind, ms, failed) {
      facts(kind, ms / 1000);
      if (failed) factFailures(kind);
    },
    relay: (result, ms) => relays(result, ms / 1000),
    message: (outcome) => messages(outcome),
    rcptVerify: (result) => verifications(result),
    rcptVerifyCache: (hit) => verifyCache(hit ? 'hit' : 'miss'),
    rcptVerifyBackend: (answer, ms) => verifyBackend(answer, ms / 1000),
    dnsLookup(type, failed) {
      dnsLookups(type);
      if (failed) dnsFailures(type);
    },
    dnsCacheHit: (cache) => dnsHits(cache),
    setVersion(version) {
      info.reset();
      info.set({ version }, 1);
    },
    watch(s) {
      sources = { ...sources, ...s };
    },
    startProcessMetrics() {
      if (processStarted) return;
      processStarted = true;
      collectDefaultMetrics({ register: registry });
      // gauges named like counters, which `promtool check metrics` refuses: their by-type
      // siblings (nodejs_active_handles…) stay, and sum to the same
      for (const name of TOTAL_GAUGES) registry.removeSingleMetric(name);
    },
    render: () => registry.metrics(),
    snapshot: () => registry.getMetricsAsJSON(),
    renderMerged: (snapshots) =>
      AggregatorRegistry.aggregate(snapshots as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics(),
    get contentType() {
      return registry.contentType;
    },
  };
}

/** The daemon's figures: recorded by every layer, served by MetricsListen (daemon/metrics-listener.ts). */
export const metrics: Metrics = createMetrics();
