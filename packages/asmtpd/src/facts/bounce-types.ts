/**
 * facts/bounce-types — shapes shared by the bounce probe's modules (bounce-probe, bounce-route,
 * bounce-session).
 *
 *   ProbeResolver                  the DNS lookups the probe makes (node dns.promises shapes and codes)
 *   BounceAnswer                   the one shape of a probe's answer ({kind, reply}), as the cache
 *                                  stores it and the policy sees it; ProbeOutcome adds where it is
 *                                  cached (scope), BounceResult whether it came from the cache
 *   accepted() / refused(reply, scope) / tempfail(reply)
 *   cleanReply(text) -> string     one line of printable ASCII, at most MAX_REPLY_LENGTH characters
 *   isPlainAddress(address)        fit for `RCPT TO:<…>`: no control characters, no angle brackets
 */
import type { BounceCacheKind, CachedBounce } from '../store/state-db.js';

/** dns.promises shapes; errors carry node's codes: ENOTFOUND (NXDOMAIN), ENODATA (no records), others temporary */
export interface ProbeResolver {
  resolveMx(name: string): Promise<{ exchange: string; priority: number }[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

export type BounceKind = BounceCacheKind;

/** A probe's answer: its kind and the reply ('' when accepted) — what the cache stores and the policy sees. */
export type BounceAnswer = CachedBounce;

/** `address`: the answer is about this sender (RCPT, or a temporary failure); `domain`: about its whole domain */
export type BounceScope = 'address' | 'domain';

/** A finished probe: the answer and what it is about (this sender or its whole domain, where it is cached). */
export interface ProbeOutcome extends BounceAnswer {
  scope: BounceScope;
}

/** What the prober returns: the answer, answered from the state database or not. */
export interface BounceResult extends BounceAnswer {
  /** answered from the state database, no connection made */
  cached: boolean;
  /** what the answer is about; absent when no probe was possible (a sender with no domain) */
  scope?: BounceScope;
}

export const MAX_REPLY_LENGTH = 200;

export function accepted(): ProbeOutcome {
  return { kind: 'accepted', reply: '', scope: 'address' };
}

export function refused(reply: string, scope: BounceScope): ProbeOutcome {
  return { kind: 'refused', reply: cleanReply(reply), scope };
}

/** Temporary failures are kept per address: one sender's unlucky probe says nothing about the domain. */
export function tempfail(reply: string): ProbeOutcome {
  return { kind: 'tempfail', reply: cleanReply(reply), scope: 'address' };
}

/**
 * A reply fit for SENDER_BOUNCERES, X-Avenger and the logs: control characters (CR, LF…) and
 * anything outside printable ASCII replaced, white space collapsed, length capped.
 */
export function cleanReply(text: string): string {
  const flat = text
    .replace(/[^\x20-\x7e]/g, (c) => (/\s/.test(c) ? ' ' : '?'))
    .replace(/ {2,}/g, ' ')
    .trim();
  return flat.length > MAX_REPLY_LENGTH ? `${flat.slice(0, MAX_REPLY_LENGTH - 3)}...` : flat;
}

/** No CR/LF or other control characters and no angle brackets: the address cannot break the command line. */
export function isPlainAddress(address: string): boolean {
  return !/[\x00-\x1f\x7f<>]/.test(address);
}
