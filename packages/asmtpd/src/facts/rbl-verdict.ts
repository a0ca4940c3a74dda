/**
 * rbl-verdict.ts — the DNSBL part of the system default (docs/facts.md "System default"):
 *
 *   rblMailError(result, threshold) -> "550 5.7.1 listed by ZONE[, ZONE…]: REASON[; REASON…]" | null
 *   roundScore(n) -> n to 6 decimals (scores may be fractions: 0.1 + 0.2 must reach 0.3)
 *
 * A rejection needs at least one listing and a total score of at least RBLThreshold (so
 * `RBLThreshold 0` does not reject clients no list names). Zones and reasons keep the order of
 * result.listed (configuration order). Reasons are DNS data: control characters become spaces
 * here; the reply builder (reply/reply.ts) cuts an overlong line.
 */
import type { RblResult } from './dnsbl.js';
import { ANSWER_TEXTS } from '../reply/catalogue.js';

export function roundScore(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

export function rblMailError(result: Pick<RblResult, 'score' | 'listed'>, threshold: number): string | null {
  if (result.listed.length === 0 || roundScore(result.score) < threshold) return null;
  const zones = result.listed.map((l) => l.zone).join(', ');
  const reasons = result.listed.map((l) => l.reason.replace(/[\x00-\x1f\x7f]+/g, ' ').trim()).join('; ');
  return ANSWER_TEXTS.rblListed(zones, reasons);
}
