/**
 * body-test.ts — body tests (avenger.md §3–§4): grouping of recipients, and the verdict of the
 * command after DATA.
 *
 *   bodyGroupOf(decision) -> BodyGroup | null      the (uid, exact command line) a recipient needs
 *   sameGroup(a, b) -> boolean                     may two recipients share one DATA reply?
 *   bodyTestVerdict(result) -> BodyVerdict         exit 0 accept, 100 reject 554 5.7.1, 111 defer
 *                                                  451 4.7.1, 99 discard, anything else 451 4.3.0
 * One DATA reply serves all recipients, so a transaction holds recipients of one group only: the
 * first accepted recipient sets it (a recipient without a body test is the group "none"), a later
 * recipient of another group gets 452 4.5.3 and is sent again by the client in another transaction.
 */
import type { RunResult } from '@asmtpd/avenger-runner';
import type { Account } from '../recipients/accounts.js';
import { type Reply } from '../reply/reply.js';
import type { RecipientDecision } from './decide.js';
import { REPLIES } from '../reply/catalogue.js';

export interface BodyGroup {
  /** who runs it (the account whose script asked for it) */
  account: Account;
  argv: string[];
  /** what the runner issued with the decision: the body-test request names this, not a command */
  token: string;
}

export type BodyVerdict = { kind: 'accept' } | { kind: 'discard' } | { kind: 'refuse'; reply: Reply; detail: string };

export function bodyGroupOf(d: RecipientDecision): BodyGroup | null {
  if (d.outcome.kind !== 'bodytest' || !d.account) return null;
  return { account: d.account, argv: d.outcome.argv, token: d.outcome.token };
}

export function sameGroup(a: BodyGroup | null, b: BodyGroup | null): boolean {
  if (a === null || b === null) return a === b;
  return a.account.uid === b.account.uid && a.argv.length === b.argv.length && a.argv.every((w, i) => w === b.argv[i]);
}

export const SEND_SEPARATELY = REPLIES.sendSeparately;

function firstLine(s: string): string {
  return (
    s
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim() ?? ''
  );
}

export function bodyTestVerdict(r: RunResult): BodyVerdict {
  if (r.kind !== 'ran') {
    const why = r.kind === 'refused' ? r.reason : r.kind === 'error' ? r.reason : 'nothing ran';
    return { kind: 'refuse', reply: REPLIES.bodyTestError(), detail: why };
  }
  if (r.timedOut)
    return { kind: 'refuse', reply: REPLIES.bodyTestTimeout(), detail: `timeout after ${r.durationMs} ms` };
  const out = firstLine(r.stdout);
  switch (r.exitCode) {
    case 0:
      return { kind: 'accept' };
    case 99:
      return { kind: 'discard' };
    case 100:
      return { kind: 'refuse', reply: REPLIES.bodyTestRefused(out), detail: 'exit 100' };
    case 111:
      return { kind: 'refuse', reply: REPLIES.bodyTestDeferred(out), detail: 'exit 111' };
    default: {
      const why = r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
      return { kind: 'refuse', reply: REPLIES.bodyTestError(), detail: why };
    }
  }
}
