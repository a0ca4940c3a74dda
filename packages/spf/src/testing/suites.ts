/*
 * testing/suites.ts — where the suites are, and the cases where a suite's expectation is not
 *   RFC 7208's answer (each with the section that decides it). Used by the tests and the bench.
 *
 * Public: SUITE_DIR, SUITES, EXCEPTIONS, expectedResults(file, test), DEFAULT_SENTINEL.
 * An exception is not a skip: the test still runs and must give the RFC 7208 answer listed here.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SuiteTest } from './zone.js';

const here = dirname(fileURLToPath(import.meta.url));
// dist/testing → packages/spf → the checkout → ../shared/spf beside it
export const SUITE_DIR =
  process.env.SPF_SUITE_DIR ??
  [resolve(here, '../../../../../shared/spf'), resolve(here, '../../../../shared/spf')].find((d) => existsSync(d)) ??
  '/work/shared/spf';

export const SUITES = {
  rfc7208: join(SUITE_DIR, 'rfc7208-tests.yml'),
  rfc4408: join(SUITE_DIR, 'rfc4408-tests.yml'),
  blitiri: join(SUITE_DIR, 'blitirispf-tests.yml'),
} as const;
export type SuiteName = keyof typeof SUITES;

/** The default explanation the harness configures, so "explanation: DEFAULT" compares exactly. */
export const DEFAULT_SENTINEL = 'DEFAULT';

export interface SuiteException {
  /** what RFC 7208 gives (and what this library must give) */
  readonly result: string;
  readonly section: string;
  readonly reason: string;
}

/** Keyed by "suite/test-name". */
export const EXCEPTIONS: Readonly<Record<string, SuiteException>> = {
  // rfc4408-tests.yml: the preferred (first) answer is RFC 4408's; RFC 7208 changed it. The
  // suite lists the RFC 7208 answer as an alternative; here only the RFC 7208 answer is accepted.
  'rfc4408/spfonly': {
    result: 'none',
    section: '3.1, 4.4',
    reason: 'type SPF (99) records are no longer looked up; only TXT',
  },
  'rfc4408/txttimeout': {
    result: 'temperror',
    section: '3.1, 4.4',
    reason: 'only the TXT query counts, and it timed out',
  },
  'rfc4408/spfoverride': { result: 'fail', section: '3.1, 4.4', reason: 'the TXT record decides; type SPF is ignored' },
  'rfc4408/multitxt1': { result: 'permerror', section: '4.5', reason: 'two v=spf1 TXT records (type SPF ignored)' },
  'rfc4408/multispf2': {
    result: 'pass',
    section: '3.1, 4.5',
    reason: 'the single TXT record decides; type SPF is ignored',
  },
  'rfc4408/invalid-domain-empty-label': {
    result: 'fail',
    section: '4.3, 4.8',
    reason:
      'RFC 7208 leaves it undefined; a target that cannot be queried does not match (the rfc7208 suite prefers fail)',
  },
  'rfc4408/invalid-domain-long': { result: 'fail', section: '4.3, 4.8', reason: 'as invalid-domain-empty-label' },
  'rfc4408/invalid-domain-long-via-macro': {
    result: 'fail',
    section: '4.3, 4.8',
    reason: 'as invalid-domain-empty-label',
  },
  'rfc4408/exists-dnserr': {
    result: 'temperror',
    section: '4.6.4, 5',
    reason: 'a DNS timeout during evaluation is temperror',
  },
  'rfc4408/mx-limit': { result: 'permerror', section: '4.6.4', reason: 'more than 10 MX names is permerror' },
  // blitirispf-tests.yml: cases that contradict RFC 7208 (and the rfc7208 suite's own tests).
  'blitiri/resolution-with-10-lookups': {
    result: 'permerror',
    section: '7.1',
    reason:
      '"include:d11" lacks "." toplabel (domain-end); rfc7208 a-only-toplabel requires permerror for the same form',
  },
  'blitiri/mx-resolution-10-terms': {
    result: 'none',
    section: '4.3',
    reason: 'sender domain "mx10" is not a multi-label domain name',
  },
  'blitiri/mx-resolution-11-terms': {
    result: 'none',
    section: '4.3',
    reason: 'sender domain "mx11" is not a multi-label domain name',
  },
  'blitiri/one-mx-not-found': {
    result: 'none',
    section: '4.3',
    reason: 'sender domain "d00" is not a multi-label domain name',
  },
  'blitiri/all-mx-not-found': {
    result: 'none',
    section: '4.3',
    reason: 'sender domain "d01" is not a multi-label domain name',
  },
  'blitiri/include-not-found': {
    result: 'none',
    section: '4.3',
    reason: 'sender domain "d02" is not a multi-label domain name',
  },
  'blitiri/redirect-not-found': {
    result: 'none',
    section: '4.3',
    reason: 'sender domain "d03" is not a multi-label domain name',
  },
};

/** The acceptable results for a test: the exception's, else the suite's. */
export function expectedResults(suite: SuiteName, t: SuiteTest): readonly string[] {
  const e = EXCEPTIONS[`${suite}/${t.name}`];
  return e === undefined ? t.results : [e.result];
}
