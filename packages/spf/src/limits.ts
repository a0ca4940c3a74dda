/*
 * limits.ts — the processing limits of RFC 7208 §4.6.4, and the abort value for errors.
 *
 * Public: Limits (countTerm, countVoid), SpfAbort, MAX_DNS_TERMS, MAX_VOID_LOOKUPS,
 *   MAX_MX_NAMES, MAX_PTR_NAMES.
 * Rules: at most 10 terms that query DNS (include, a, mx, ptr, exists, redirect) per check,
 *   counted as they are evaluated, across include and redirect; the 11th → permerror. At most
 *   2 void lookups (NXDOMAIN or an empty answer to a term's own query); the 3rd → permerror.
 *   The explanation (exp=) lookup is done after the result is known and counts for neither.
 *   An mx term with more than 10 MX names → permerror; a ptr term or %{p} looks at the first
 *   10 PTR names only.
 * SpfAbort is thrown (without a stack trace: it is control flow, not a bug) to end the
 *   evaluation with permerror or temperror; check-host.ts turns it into the result.
 */

export const MAX_DNS_TERMS = 10;
export const MAX_VOID_LOOKUPS = 2;
export const MAX_MX_NAMES = 10;
export const MAX_PTR_NAMES = 10;

export class SpfAbort {
  constructor(
    readonly result: 'permerror' | 'temperror',
    readonly problem: string,
  ) {}
}

export class Limits {
  terms = 0;
  voids = 0;
  constructor(
    readonly maxTerms = MAX_DNS_TERMS,
    readonly maxVoids = MAX_VOID_LOOKUPS,
  ) {}

  /** Called before a DNS-querying term is evaluated. */
  countTerm(term: string): void {
    if (++this.terms > this.maxTerms) {
      throw new SpfAbort('permerror', `more than ${this.maxTerms} DNS-querying terms (at "${term}")`);
    }
  }

  /** Called when a term's own query got NXDOMAIN or no records. */
  countVoid(name: string): void {
    if (++this.voids > this.maxVoids) {
      throw new SpfAbort('permerror', `more than ${this.maxVoids} void lookups (at ${name})`);
    }
  }
}
