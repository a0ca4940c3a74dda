/*
 * mechanisms.ts — evaluation of the mechanisms that need no recursion (RFC 7208 §5):
 *   all, a, mx, ptr, ip4, ip6, exists; and the validated domain name behind %{p} (§7.3).
 *
 * Public: EvalContext, expandTarget(ctx, spec, domain), matchMechanism(ctx, m, domain)
 *   (include is evaluated by check-host.ts, which owns recursion), validatedName(ctx, domain).
 * Returns true/false for match/no match; throws SpfAbort for temperror/permerror.
 * Rules: a/mx ask A for an IPv4 client and AAAA for an IPv6 one, with the dual CIDR lengths;
 *   exists always asks A (§5.7); a void answer to the term's own query counts as a void
 *   lookup; an MX name that does not resolve is skipped, a temporary error is temperror;
 *   mx with more than 10 names is permerror; ptr takes the first 10 PTR names, keeps those
 *   equal to or under the target, and matches when one of them resolves back to the client
 *   (errors while validating skip that name, an error on the PTR query is no match, §5.5).
 *   A target whose expansion cannot be queried (empty or over-long label) does not match.
 * Lookups that do not depend on each other are started together; their answers are then read
 *   in record order, so the outcome is the one a sequential evaluation would give.
 * Security: every query goes through the per-check LookupCache and the Limits.
 */
import {
  addressEquals,
  addressMatches,
  matchIp4 as addressMatchesNet4,
  matchIp6 as addressMatchesNet6,
  type ClientIp,
} from './ip.js';
import { expandDomain, type MacroString, type MacroValues } from './macro.js';
import type { Mechanism } from './parse.js';
import type { AddressType, Answer, LookupCache, MxRecord } from './resolver.js';
import { Limits, MAX_MX_NAMES, MAX_PTR_NAMES, SpfAbort } from './limits.js';

export interface EvalContext {
  readonly ip: ClientIp;
  readonly addressType: AddressType;
  readonly lookups: LookupCache;
  readonly limits: Limits;
  /** macro values except d and p */
  readonly values: Omit<MacroValues, 'domain' | 'validatedName'>;
  /** how many more terms the prefetcher may start lookups for in this check */
  readonly prefetch: { left: number };
}

export async function macroValues(ctx: EvalContext, ms: MacroString, domain: string): Promise<MacroValues> {
  if (!ms.usesP) return { ...ctx.values, domain };
  return { ...ctx.values, domain, validatedName: await validatedName(ctx, domain) };
}

/** Expands a target domain-spec (or returns the current domain when there is none). */
export async function expandTarget(
  ctx: EvalContext,
  spec: MacroString | null,
  domain: string,
): Promise<string | undefined> {
  if (spec === null) return domain;
  return expandDomain(spec, await macroValues(ctx, spec, domain));
}

function temperror(what: string, code: string): SpfAbort {
  return new SpfAbort('temperror', `DNS ${code} for ${what}`);
}

function stripDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

async function matchAddresses(ctx: EvalContext, name: string, cidr4: number, cidr6: number): Promise<boolean> {
  const ans = await ctx.lookups.address(ctx.addressType, name);
  if (ans.kind === 'void') {
    ctx.limits.countVoid(name);
    return false;
  }
  if (ans.kind === 'error') throw temperror(`${ctx.addressType} ${name}`, ans.code);
  for (const a of ans.values) if (addressMatches(ctx.ip, a, cidr4, cidr6)) return true;
  return false;
}

/** The hosts of an MX answer (at most MAX_MX_NAMES records), by preference. */
function mxHosts(values: readonly MxRecord[]): string[] {
  return [...values]
    .sort((x, y) => x.priority - y.priority)
    .map((r) => stripDot(r.exchange))
    .filter((h) => h !== ''); // a null MX (RFC 7505) names no host
}

async function matchMx(ctx: EvalContext, name: string, cidr4: number, cidr6: number): Promise<boolean> {
  const ans = await ctx.lookups.mx(name);
  if (ans.kind === 'void') {
    ctx.limits.countVoid(name);
    return false;
  }
  if (ans.kind === 'error') throw temperror(`MX ${name}`, ans.code);
  if (ans.values.length > MAX_MX_NAMES) {
    throw new SpfAbort('permerror', `more than ${MAX_MX_NAMES} MX names for ${name}`);
  }
  const hosts = mxHosts(ans.values);
  const answers = hosts.map((h) => ctx.lookups.address(ctx.addressType, h));
  for (let i = 0; i < answers.length; i++) {
    const a = await (answers[i] as (typeof answers)[number]);
    if (a.kind === 'void') continue;
    if (a.kind === 'error') {
      // settle the others so none is left unobserved, then report
      await Promise.allSettled(answers);
      throw temperror(`${ctx.addressType} ${hosts[i]}`, a.code);
    }
    for (const addr of a.values) if (addressMatches(ctx.ip, addr, cidr4, cidr6)) return true;
  }
  return false;
}

/** The first 10 PTR names of the client, without trailing dots; [] on any error. */
async function ptrNames(ctx: EvalContext): Promise<string[]> {
  return ptrNamesOf(await ctx.lookups.ptr(ctx.ip.text));
}

/** Does this name resolve back to the client? Errors count as no. */
async function validates(ctx: EvalContext, name: string): Promise<boolean> {
  const a = await ctx.lookups.address(ctx.addressType, name);
  if (a.kind !== 'ok') return false;
  for (const addr of a.values) if (addressEquals(ctx.ip, addr)) return true;
  return false;
}

function isUnder(name: string, target: string): boolean {
  const n = name.toLowerCase();
  const t = target.toLowerCase();
  return n === t || (n.endsWith(t) && n.charCodeAt(n.length - t.length - 1) === 0x2e);
}

function ptrNamesOf(ans: Answer<string>): string[] {
  return ans.kind === 'ok' ? ans.values.slice(0, MAX_PTR_NAMES).map(stripDot) : [];
}

async function matchPtr(ctx: EvalContext, target: string): Promise<boolean> {
  const candidates = (await ptrNames(ctx)).filter((n) => isUnder(n, target));
  if (candidates.length === 0) return false;
  const checks = candidates.map((n) => validates(ctx, n));
  for (const c of checks) if (await c) return true;
  return false;
}

/** %{p}: a validated name of the client, preferring <domain> itself, then a name under it. */
export async function validatedName(ctx: EvalContext, domain: string): Promise<string> {
  const names = await ptrNames(ctx);
  const ok = await Promise.all(names.map((n) => validates(ctx, n)));
  const valid = names.filter((_, i) => ok[i]);
  const d = domain.toLowerCase();
  return valid.find((n) => n.toLowerCase() === d) ?? valid.find((n) => isUnder(n, domain)) ?? valid[0] ?? 'unknown';
}

/**
 * Prefetch: starts, without waiting for them, the lookups that evaluating `m` (an a, mx, ptr
 * or exists term) would ask, chaining the second step (the MX hosts' addresses, the PTR names'
 * addresses) as the first answer arrives. Nothing is counted or decided here: the answers land
 * in the per-check LookupCache, where matchMechanism reads them in record order, so results,
 * term and void-lookup counts and error precedence are those of a sequential evaluation.
 * A target that needs %{p} (itself DNS-dependent) is not prefetched. Never throws.
 * Returns whether it started a lookup not already in the cache.
 */
/** a prefetch that goes wrong is simply not there: the evaluation asks (and reports) itself */
export function ignore(): void {}

export function prefetchMechanism(ctx: EvalContext, m: Mechanism, domain: string): boolean {
  if (m.kind !== 'a' && m.kind !== 'mx' && m.kind !== 'ptr' && m.kind !== 'exists') return false;
  if (m.domain !== null && m.domain.usesP) return false;
  const target = m.domain === null ? domain : expandDomain(m.domain, { ...ctx.values, domain });
  if (target === undefined) return false;
  const lookups = ctx.lookups;
  switch (m.kind) {
    case 'a':
      if (lookups.has(ctx.addressType, target)) return false;
      void lookups.address(ctx.addressType, target);
      return true;
    case 'exists':
      if (lookups.has('A', target)) return false;
      void lookups.address('A', target);
      return true;
    case 'mx':
      if (lookups.has('MX', target)) return false;
      void lookups
        .mx(target)
        .then((ans) => {
          if (ans.kind !== 'ok' || ans.values.length > MAX_MX_NAMES || lookups.closed) return;
          for (const h of mxHosts(ans.values)) void lookups.address(ctx.addressType, h);
        })
        .catch(ignore);
      return true;
    case 'ptr':
      if (lookups.has('PTR', ctx.ip.text)) return false;
      void lookups
        .ptr(ctx.ip.text)
        .then((ans) => {
          if (lookups.closed) return;
          for (const n of ptrNamesOf(ans)) if (isUnder(n, target)) void lookups.address(ctx.addressType, n);
        })
        .catch(ignore);
      return true;
  }
}

/** Evaluates one non-include mechanism against the client. */
export async function matchMechanism(ctx: EvalContext, m: Mechanism, domain: string): Promise<boolean> {
  switch (m.kind) {
    case 'all':
      return true;
    case 'ip4':
      return ctx.ip.family === 4 && addressMatchesNet4(ctx.ip.v4, m.network, m.cidr);
    case 'ip6':
      return ctx.ip.family === 6 && addressMatchesNet6(ctx.ip.v6, m.network, m.cidr);
    case 'a':
    case 'mx': {
      ctx.limits.countTerm(m.text);
      const target = await expandTarget(ctx, m.domain, domain);
      if (target === undefined) return false;
      return m.kind === 'a' ? matchAddresses(ctx, target, m.cidr4, m.cidr6) : matchMx(ctx, target, m.cidr4, m.cidr6);
    }
    case 'ptr': {
      ctx.limits.countTerm(m.text);
      const target = await expandTarget(ctx, m.domain, domain);
      if (target === undefined) return false;
      return matchPtr(ctx, target);
    }
    case 'exists': {
      ctx.limits.countTerm(m.text);
      const target = await expandTarget(ctx, m.domain, domain);
      if (target === undefined) return false;
      const ans = await ctx.lookups.address('A', target);
      if (ans.kind === 'void') {
        ctx.limits.countVoid(target);
        return false;
      }
      if (ans.kind === 'error') throw temperror(`A ${target}`, ans.code);
      return true;
    }
    case 'include':
      throw new Error('include is evaluated by check-host');
  }
}
