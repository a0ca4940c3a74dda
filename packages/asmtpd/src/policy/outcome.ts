/**
 * outcome.ts — what a policy run decided, and the SMTP reply for it (avenger.md §2).
 *
 *   outcomeFromRun(result) -> Outcome       runner result → accept / reject / defer / redirect /
 *                                            bodytest / provisional / failed
 *   replyForOutcome(outcome) -> Reply        the RCPT reply
 *   replyFromScriptText(text, kind) -> Reply "550 5.1.1 text", "554 text" or "text" → a Reply of the
 *                                            right class (reject: 5xx, defer: 4xx), defaults 550 5.7.1 / 451 4.7.1
 * A script that exits non-zero without a decision, crashes, times out, or is refused by the
 * runner's safety checks → failed → 451 4.3.0 (never an accept).
 */
import type { RunResult } from '@asmtpd/avenger-runner';
import { reply, type Reply } from '../reply/reply.js';
import { REPLIES } from '../reply/catalogue.js';

export type Outcome =
  | { kind: 'accept'; text: string | null }
  | { kind: 'reject'; reply: Reply }
  | { kind: 'defer'; reply: Reply }
  | { kind: 'redirect'; address: string }
  /** token: what the runner issued with the decision, to run exactly this test as that user after DATA */
  | { kind: 'bodytest'; argv: string[]; token: string }
  /** no file, or a script that ended without deciding: the system default decides */
  | { kind: 'provisional' }
  | { kind: 'failed'; reason: string };

export function outcomeFromRun(r: RunResult): Outcome {
  switch (r.kind) {
    case 'none':
      return { kind: 'provisional' };
    case 'refused':
      return { kind: 'failed', reason: `refused to run ${r.script ?? 'script'}: ${r.reason}` };
    case 'error':
      return { kind: 'failed', reason: `runner error: ${r.reason}` };
    case 'reloaded':
      return { kind: 'failed', reason: 'runner answered a reload' };
    case 'ran': {
      if (r.timedOut) return { kind: 'failed', reason: `${r.script ?? 'command'} timed out after ${r.durationMs} ms` };
      const d = r.decision;
      if (!d) {
        if (r.exitCode === 0) return { kind: 'provisional' };
        const why = r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
        return {
          kind: 'failed',
          reason: `${r.script ?? 'script'} ended without a decision (${why})${r.decisionError ? `: ${r.decisionError}` : ''}`,
        };
      }
      const text = d.args.join(' ').trim();
      switch (d.verb) {
        case 'accept':
          return { kind: 'accept', text: text || null };
        case 'reject':
          return { kind: 'reject', reply: replyFromScriptText(text, 'reject') };
        case 'defer':
          return { kind: 'defer', reply: replyFromScriptText(text, 'defer') };
        case 'redirect':
          return d.args[0]
            ? { kind: 'redirect', address: d.args[0] }
            : { kind: 'failed', reason: 'redirect without an address' };
        case 'bodytest':
          if (!d.args.length) return { kind: 'failed', reason: 'bodytest without a command' };
          return r.bodyTest
            ? { kind: 'bodytest', argv: d.args, token: r.bodyTest }
            : { kind: 'failed', reason: 'bodytest without a token from the runner' };
      }
    }
  }
}

const SCRIPT_REPLY = /^([245])(\d\d)(?:[ -]([245]\.\d{1,3}\.\d{1,3}))?(?:\s+([\s\S]*))?$/;

export function replyFromScriptText(text: string, kind: 'reject' | 'defer'): Reply {
  const cls = kind === 'reject' ? '5' : '4';
  const fallback = kind === 'reject' ? REPLIES.rejectedByPolicy() : REPLIES.deferredByPolicy();
  const m = SCRIPT_REPLY.exec(text.trim());
  if (m && m[1] === cls) {
    const code = Number(m[1]! + m[2]!);
    const enhanced = m[3] && m[3][0] === cls ? m[3] : `${cls}${fallback.enhanced.slice(1)}`;
    return reply(code, enhanced, m[4]?.trim() || fallback.text);
  }
  // no code of the right class at the start: the whole text is the message
  return text ? reply(fallback.code, fallback.enhanced, text) : fallback;
}

export function replyForOutcome(o: Outcome): Reply {
  switch (o.kind) {
    case 'accept':
      return REPLIES.recipientOk(o.text);
    case 'bodytest':
    case 'provisional':
      return REPLIES.recipientOk();
    case 'reject':
    case 'defer':
      return o.reply;
    case 'redirect':
    case 'failed':
      return REPLIES.policyError();
  }
}
