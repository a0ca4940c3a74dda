/*
 * check-host.ts — the public entry: check_host() of RFC 7208 §4, the MAIL FROM and HELO
 *   identities (§2.3, §2.4), and evaluation of a policy string for the current client.
 *
 * Public:
 *   checkHost(ip, domain, sender, options) -> Promise<SpfResult>
 *   checkMailFrom(ip, mailFrom, helo, options) -> Promise<SpfResult>  (empty sender → postmaster@helo)
 *   checkHelo(ip, helo, options) -> Promise<SpfResult>
 *   evaluatePolicy(record, context) -> Promise<SpfResult>  ("ip4:… a:… -all", with or without v=spf1)
 *   parseLocalPolicy(text) (validate SPFLocal at configuration time), DEFAULT_EXPLANATION.
 * Flow: the domain must be a well-formed multi-label name (else none, §4.3); its TXT records
 *   are fetched (no record → none, a DNS error → temperror, two v=spf1 records → permerror);
 *   the record is parsed whole (syntax error → permerror); mechanisms are tried in order;
 *   include recurses (pass → match; fail, softfail, neutral → no match; none or permerror →
 *   permerror; temperror → temperror); redirect is followed only when no mechanism matched and
 *   carries its own exp=; nothing matched → neutral. On fail the exp= of the deciding record is
 *   expanded (exactly one TXT record, valid ASCII explain-string, else the default explanation).
 * Options: SPFLocal (`local`) is evaluated on the sender's own policy chain (the record and its
 *   redirect targets, not included records) just before a final "all" or, when there is none
 *   and no redirect, before the default; it has its own lookup budget and its errors are
 *   ignored. SPFHostsFile (`hostsRecord`) supplies a record for a domain that publishes none.
 *   `timeoutMs` (default 20000) bounds the whole evaluation: past it every pending lookup
 *   fails and the result is temperror (§4.6.4).
 * Security: trusts only the resolver's answers; never sends mail, never queries more than the
 *   §4.6.4 limits allow, and never throws on hostile DNS data (it becomes permerror/temperror).
 */
import { parseClientIp, parseIp4Network, type ClientIp } from './ip.js';
import {
  expandDomain,
  expandMacroString,
  parseMacroString,
  SpfSyntaxError,
  validDomainName,
  type MacroString,
} from './macro.js';
import { isSpfRecord, parseRecord, parseTerms, type Mechanism, type Qualifier, type SpfRecord } from './parse.js';
import { LookupCache, type Answer, type SpfResolver } from './resolver.js';
import { Limits, MAX_DNS_TERMS, SpfAbort } from './limits.js';
import {
  expandTarget,
  ignore,
  macroValues,
  matchMechanism,
  prefetchMechanism,
  type EvalContext,
} from './mechanisms.js';

/** The result words of RFC 7208 §2.6. */
export type SpfResultWord = 'none' | 'neutral' | 'pass' | 'fail' | 'softfail' | 'temperror' | 'permerror';

export const DEFAULT_EXPLANATION = '%{d} does not designate %{c} as permitted sender';

export interface CheckOptions {
  resolver: SpfResolver;
  /** HELO/EHLO argument (%{h}) */
  helo?: string;
  /** name of the host doing the check (%{r}); default "unknown" */
  receiver?: string;
  /** SPFLocal: mechanisms evaluated before the sender policy's final all/default */
  local?: string;
  /** SPFHostsFile: a record for a domain that publishes no SPF record */
  hostsRecord?: (domain: string) => string | undefined;
  /** bound on the whole evaluation; default 20000 (RFC 7208 §4.6.4 asks for at least 20 s) */
  timeoutMs?: number;
  /** macro-string used when a fail has no usable exp=; default DEFAULT_EXPLANATION */
  defaultExplanation?: string;
  /** clock for %{t}, in ms since the epoch; default Date.now */
  now?: () => number;
}

export interface SpfResult {
  result: SpfResultWord;
  /** on fail: the expanded exp= text or the default explanation */
  explanation?: string;
  /** the term that decided ("-all", "ip4:192.0.2.0/24", …), or "default" when none matched */
  mechanism?: string;
  /** true when the deciding term came from SPFLocal */
  local?: boolean;
  /** why a permerror/temperror/none happened */
  problem?: string;
  /** the domain checked */
  domain: string;
  /** the sender used (local-part@domain) */
  sender: string;
  /** DNS-querying terms evaluated, void lookups seen, queries sent to the resolver */
  dnsTerms: number;
  voidLookups: number;
  queries: number;
}

export interface PolicyContext extends CheckOptions {
  ip: string;
  /** MAIL FROM address; empty means postmaster@helo */
  sender: string;
  /** the domain for %{d} and for a, mx, ptr without a target; default: the sender's domain */
  domain?: string;
}

const QUALIFIER_RESULT: Record<Qualifier, SpfResultWord> = {
  '+': 'pass',
  '-': 'fail',
  '~': 'softfail',
  '?': 'neutral',
};

interface Outcome {
  result: SpfResultWord;
  mechanism: string;
  local?: boolean;
  exp: MacroString | null;
  expDomain: string;
}

interface Evaluation {
  readonly ctx: EvalContext;
  readonly options: CheckOptions;
  readonly local: readonly Mechanism[] | null;
}

/** Why the domain cannot be checked (RFC 7208 §4.3), or undefined when it can. */
function domainProblem(domain: string): string | undefined {
  if (domain.startsWith('[')) return 'domain literal';
  if (!validDomainName(domain)) return 'malformed domain name';
  if (!domain.includes('.')) return 'not a multi-label domain name';
  if (parseIp4Network(domain) !== undefined) return 'an address, not a domain name';
  return undefined;
}

function stripDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** Fetches and parses the SPF record of a domain; undefined when it has none. */
async function fetchRecord(ev: Evaluation, domain: string): Promise<SpfRecord | undefined> {
  return recordOf(ev.options, await ev.ctx.lookups.txt(domain), domain);
}

/** The SPF record in a TXT answer (or from hostsRecord); throws SpfAbort like §4.4–4.5 say. */
function recordOf(options: CheckOptions | null, ans: Answer<string[]>, domain: string): SpfRecord | undefined {
  if (ans.kind === 'error') throw new SpfAbort('temperror', `DNS ${ans.code} for TXT ${domain}`);
  let found: string | undefined;
  if (ans.kind === 'ok') {
    for (const chunks of ans.values) {
      const text = chunks.length === 1 ? (chunks[0] as string) : chunks.join('');
      if (!isSpfRecord(text)) continue;
      if (found !== undefined) throw new SpfAbort('permerror', `more than one SPF record for ${domain}`);
      found = text;
    }
  }
  if (found === undefined) {
    found = options?.hostsRecord?.(domain);
    if (found === undefined) return undefined;
    if (!isSpfRecord(found)) found = `v=spf1 ${found}`;
  }
  try {
    return parseRecord(found);
  } catch (err) {
    if (err instanceof SpfSyntaxError) throw new SpfAbort('permerror', `${err.message} (record of ${domain})`);
    throw err;
  }
}

const DNS_TERM = new Set(['include', 'a', 'mx', 'ptr', 'exists']);

/**
 * Prefetch (RFC 7208 semantics unchanged): as soon as a record is parsed, the lookups of its
 * DNS-querying terms are started together — a/mx/ptr/exists (mechanisms.ts), and the TXT of
 * include and redirect targets, whose records are prefetched in turn when they arrive.
 * Evaluation then reads the answers from the per-check LookupCache in record order and does
 * all the counting and deciding, so the result, the term and void-lookup counts and which
 * error wins are those of a sequential evaluation; only `queries` can be higher (lookups for
 * terms after the deciding one). Bounds: only terms the 10-term limit lets evaluation reach at
 * their position (`budget`), at most MAX_DNS_TERMS prefetched terms per check, nothing that
 * needs %{p}, no SPFHostsFile call, no SPFLocal terms, nothing once the check is over.
 */
function prefetchRecord(ev: Evaluation, record: SpfRecord, domain: string, budget: number): void {
  const ctx = ev.ctx;
  for (const m of record.mechanisms) {
    if (!DNS_TERM.has(m.kind)) continue;
    if (budget <= 0 || ctx.prefetch.left <= 0) return;
    budget--;
    const started =
      m.kind === 'include' ? prefetchDomain(ev, m.domain, domain, budget) : prefetchMechanism(ctx, m, domain);
    if (started) ctx.prefetch.left--;
  }
  if (record.redirect !== null && budget > 0 && ctx.prefetch.left > 0) {
    if (prefetchDomain(ev, record.redirect, domain, budget - 1)) ctx.prefetch.left--;
  }
}

function prefetchDomain(ev: Evaluation, spec: MacroString | null, domain: string, budget: number): boolean {
  if (spec === null || spec.usesP) return false;
  const lookups = ev.ctx.lookups;
  const target = expandDomain(spec, { ...ev.ctx.values, domain });
  if (target === undefined || domainProblem(target) !== undefined || lookups.has('TXT', target)) return false;
  void lookups
    .txt(target)
    .then((ans) => {
      if (lookups.closed) return;
      let record: SpfRecord | undefined;
      try {
        record = recordOf(null, ans, target);
      } catch {
        return;
      }
      if (record !== undefined) prefetchRecord(ev, record, target, budget);
    })
    .catch(ignore);
  return true;
}

async function evaluateDomain(ev: Evaluation, domain: string, topLevel: boolean): Promise<Outcome | undefined> {
  const record = await fetchRecord(ev, domain);
  if (record === undefined) return undefined;
  return evaluateRecord(ev, record, domain, topLevel);
}

async function matchInclude(
  ev: Evaluation,
  ctx: EvalContext,
  m: Mechanism & { kind: 'include' },
  domain: string,
): Promise<boolean> {
  ctx.limits.countTerm(m.text);
  const target = await expandTarget(ctx, m.domain, domain);
  if (target === undefined || domainProblem(target) !== undefined) {
    throw new SpfAbort('permerror', `include target of "${m.text}" is not a domain name`);
  }
  const sub = await evaluateDomain({ ...ev, ctx }, target, false);
  if (sub === undefined) throw new SpfAbort('permerror', `included domain ${target} has no SPF record`);
  return sub.result === 'pass';
}

async function tryTerm(ev: Evaluation, ctx: EvalContext, m: Mechanism, domain: string): Promise<boolean> {
  return m.kind === 'include' ? matchInclude(ev, ctx, m, domain) : matchMechanism(ctx, m, domain);
}

/** SPFLocal: own budget, errors ignored. */
async function evaluateLocal(ev: Evaluation, domain: string): Promise<Outcome | undefined> {
  if (ev.local === null) return undefined;
  const ctx: EvalContext = { ...ev.ctx, limits: new Limits() };
  for (const m of ev.local) {
    try {
      if (await tryTerm(ev, ctx, m, domain)) {
        return { result: QUALIFIER_RESULT[m.qualifier], mechanism: m.text, local: true, exp: null, expDomain: domain };
      }
    } catch (err) {
      if (err instanceof SpfAbort) return undefined;
      throw err;
    }
  }
  return undefined;
}

async function evaluateRecord(ev: Evaluation, record: SpfRecord, domain: string, topLevel: boolean): Promise<Outcome> {
  prefetchRecord(ev, record, domain, ev.ctx.limits.maxTerms - ev.ctx.limits.terms);
  const mechs = record.mechanisms;
  let localAt = -1;
  if (topLevel && ev.local !== null) {
    if (mechs.length > 0 && mechs[mechs.length - 1]?.kind === 'all') localAt = mechs.length - 1;
    else if (record.redirect === null) localAt = mechs.length;
  }
  for (let i = 0; i <= mechs.length; i++) {
    if (i === localAt) {
      const local = await evaluateLocal(ev, domain);
      if (local !== undefined) return local;
    }
    const m = mechs[i];
    if (m === undefined) break;
    if (await tryTerm(ev, ev.ctx, m, domain)) {
      return { result: QUALIFIER_RESULT[m.qualifier], mechanism: m.text, exp: record.exp, expDomain: domain };
    }
  }
  if (record.redirect !== null) {
    ev.ctx.limits.countTerm(`redirect=${record.redirect.raw}`);
    const target = await expandTarget(ev.ctx, record.redirect, domain);
    if (target === undefined || domainProblem(target) !== undefined) {
      throw new SpfAbort('permerror', `redirect target "${record.redirect.raw}" is not a domain name`);
    }
    const sub = await evaluateDomain(ev, target, topLevel);
    if (sub === undefined) throw new SpfAbort('permerror', `redirect domain ${target} has no SPF record`);
    return sub;
  }
  return { result: 'neutral', mechanism: 'default', exp: record.exp, expDomain: domain };
}

const explanationCache = new Map<string, MacroString>();

function parseExplanation(text: string): MacroString {
  let ms = explanationCache.get(text);
  if (ms === undefined) {
    ms = parseMacroString(text, 'explanation');
    if (explanationCache.size > 256) explanationCache.clear();
    explanationCache.set(text, ms);
  }
  return ms;
}

const PRINTABLE_RE = /^[\x20-\x7e]*$/;

/** The explanation of a fail (RFC 7208 §6.2): exp= when usable, else the default. */
async function explain(ev: Evaluation, o: Outcome): Promise<string> {
  const ctx = ev.ctx;
  if (o.exp !== null) {
    const target = await expandTarget(ctx, o.exp, o.expDomain);
    if (target !== undefined) {
      const ans = await ctx.lookups.txt(target);
      if (ans.kind === 'ok' && ans.values.length === 1) {
        const text = (ans.values[0] as string[]).join('');
        if (PRINTABLE_RE.test(text)) {
          try {
            const ms = parseExplanation(text);
            return expandMacroString(ms, await macroValues(ctx, ms, o.expDomain));
          } catch (err) {
            if (!(err instanceof SpfSyntaxError)) throw err;
          }
        }
      }
    }
  }
  const ms = parseExplanation(ev.options.defaultExplanation ?? DEFAULT_EXPLANATION);
  return expandMacroString(ms, await macroValues(ctx, ms, o.expDomain));
}

/** Parses SPFLocal mechanisms; throws SpfSyntaxError (with the reason) when invalid. */
export function parseLocalPolicy(text: string): readonly Mechanism[] {
  const t = parseTerms(text);
  if (t.redirect !== null || t.exp !== null) throw new SpfSyntaxError('SPFLocal takes mechanisms only');
  return t.mechanisms;
}

const localCache = new Map<string, readonly Mechanism[]>();

function splitSender(sender: string, domain: string): { sender: string; localPart: string; senderDomain: string } {
  const at = sender.lastIndexOf('@');
  let localPart = at < 0 ? '' : sender.slice(0, at);
  const senderDomain = at < 0 ? (sender === '' ? domain : sender) : sender.slice(at + 1);
  if (localPart === '') localPart = 'postmaster';
  return { sender: `${localPart}@${senderDomain}`, localPart, senderDomain };
}

async function run(
  ipText: string,
  domainIn: string,
  senderIn: string,
  options: CheckOptions,
  policy: string | null,
): Promise<SpfResult> {
  const ip: ClientIp | undefined = parseClientIp(ipText);
  if (ip === undefined) throw new TypeError(`spf: not an IP address: ${JSON.stringify(ipText)}`);
  const domain = stripDot(domainIn);
  const s = splitSender(senderIn, domain);
  let local: readonly Mechanism[] | null = null;
  if (options.local !== undefined && options.local.trim() !== '') {
    local = localCache.get(options.local) ?? null;
    if (local === null) {
      local = parseLocalPolicy(options.local);
      localCache.set(options.local, local);
    }
  }
  const lookups = new LookupCache(options.resolver, options.timeoutMs ?? 20000);
  const limits = new Limits();
  const ctx: EvalContext = {
    ip,
    addressType: ip.family === 4 ? 'A' : 'AAAA',
    lookups,
    limits,
    values: {
      sender: s.sender,
      localPart: s.localPart,
      senderDomain: s.senderDomain,
      ipDotted: ip.macroI,
      ipReadable: ip.macroC,
      ipVersion: ip.family === 4 ? 'in-addr' : 'ip6',
      helo: options.helo ?? '',
      receiver: options.receiver ?? 'unknown',
      nowSeconds: Math.floor((options.now ?? Date.now)() / 1000),
    },
    prefetch: { left: MAX_DNS_TERMS },
  };
  const ev: Evaluation = { ctx, options, local };
  const base = { domain, sender: s.sender };
  const counters = (): Pick<SpfResult, 'dnsTerms' | 'voidLookups' | 'queries'> => ({
    dnsTerms: limits.terms,
    voidLookups: limits.voids,
    queries: lookups.queries,
  });
  try {
    let outcome: Outcome | undefined;
    if (policy !== null) {
      let record: SpfRecord;
      try {
        record = parseRecord(isSpfRecord(policy) ? policy : `v=spf1 ${policy}`);
      } catch (err) {
        if (err instanceof SpfSyntaxError) return { result: 'permerror', problem: err.message, ...base, ...counters() };
        throw err;
      }
      outcome = await evaluateRecord(ev, record, domain, false);
    } else {
      const problem = domainProblem(domain);
      if (problem !== undefined) return { result: 'none', problem: `${problem}: ${domain}`, ...base, ...counters() };
      outcome = await evaluateDomain(ev, domain, true);
    }
    if (outcome === undefined) return { result: 'none', ...base, ...counters() };
    const r: SpfResult = { result: outcome.result, mechanism: outcome.mechanism, ...base, ...counters() };
    if (outcome.local) r.local = true;
    if (outcome.result === 'fail') {
      r.explanation = await explain(ev, outcome);
      r.queries = lookups.queries;
    }
    return r;
  } catch (err) {
    if (err instanceof SpfAbort) return { result: err.result, problem: err.problem, ...base, ...counters() };
    throw err;
  } finally {
    lookups.close();
  }
}

/** check_host(<ip>, <domain>, <sender>) of RFC 7208 §4. */
export function checkHost(ip: string, domain: string, sender: string, options: CheckOptions): Promise<SpfResult> {
  return run(ip, domain, sender, options, null);
}

/** The MAIL FROM identity (§2.4); an empty or "<>" sender checks postmaster@helo (§2.4). */
export function checkMailFrom(ip: string, mailFrom: string, helo: string, options: CheckOptions): Promise<SpfResult> {
  const m = mailFrom === '<>' ? '' : mailFrom;
  const o = { ...options, helo: options.helo ?? helo };
  if (m === '') return run(ip, helo, `postmaster@${helo}`, o, null);
  const at = m.lastIndexOf('@');
  return run(ip, at < 0 ? m : m.slice(at + 1), m, o, null);
}

/** The HELO identity (§2.3). */
export function checkHelo(ip: string, helo: string, options: CheckOptions): Promise<SpfResult> {
  return run(ip, helo, `postmaster@${helo}`, { ...options, helo: options.helo ?? helo }, null);
}

/**
 * Evaluates a policy (terms, with or without "v=spf1") for the client as if it were the record
 * of `context.domain` (default: the sender's domain, or the HELO for an empty sender).
 * SPFLocal is not applied: the policy is the caller's own.
 */
export function evaluatePolicy(record: string, context: PolicyContext): Promise<SpfResult> {
  const helo = context.helo ?? '';
  const sender = context.sender === '<>' ? '' : context.sender;
  const senderFull = sender === '' ? `postmaster@${helo}` : sender;
  const at = senderFull.lastIndexOf('@');
  const domain = context.domain ?? (at < 0 ? senderFull : senderFull.slice(at + 1));
  const { local: _ignored, ...options } = context;
  return run(context.ip, domain, senderFull, { ...options, helo }, record);
}
