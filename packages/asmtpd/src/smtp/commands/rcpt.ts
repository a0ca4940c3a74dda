/**
 * rcpt.ts — RCPT TO: route the address, settle the client's facts, run the recipient's policy
 * (remembered per sender and recipient for the session), then — the policy said yes — ask the
 * downstream (relay begin(): the before-queue proxy opens the downstream transaction at the first
 * accepted RCPT, downstream.ts): its refusal refuses this recipient only, with its own reply.
 *
 *   onRcptTo(deps, address, session, cb)      logs rcpt.decision (and policy.failed)
 */
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { REPLIES, ReplyAsError } from '../../reply/catalogue.js';
import { formatReply, type Reply } from '../../reply/reply.js';
import type { Route } from '../../recipients/route.js';
import { decideRecipient, type RecipientDecision, type ScriptRun } from '../../policy/decide.js';
import { bodyGroupOf, sameGroup, SEND_SEPARATELY } from '../../policy/body-test.js';
import { systemDefault } from '../../facts/system-default.js';
import type { Session } from '../session.js';
import type { Runtime } from '../runtime.js';
import { rcptParamProblem } from '../extensions.js';
import { askDownstream } from '../downstream.js';
import { succeed, type Callback, type CommandDeps } from './context.js';
import { metrics, type DecisionOutcome, type DecisionSource } from '../../metrics/metrics.js';

export function onRcptTo(d: CommandDeps, address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): void {
  const s = d.sessionOf(session);
  const tx = s?.tx;
  if (!s || !tx) return cb(new ReplyAsError(REPLIES.localError()));
  const rt = d.runtime();
  // a parameter we do not take (555) refuses a recipient the policy would accept; a refusal wins
  const paramError = rcptParamProblem(address.args);
  const sourceRoute = (address as { sourceRoute?: boolean }).sourceRoute === true;
  const started = Date.now();
  decide(rt, s, tx.from, address.address, sourceRoute)
    .then(async ({ route, decision, cached }) => {
      let r = decision?.reply ?? replyForRoute(route);
      let source: DecisionSource = cached ? 'cache' : (decision?.decidedBy ?? 'route');
      const group = decision ? bodyGroupOf(decision) : null;
      if (r.code < 400 && tx.group !== undefined && !sameGroup(tx.group, group)) {
        r = SEND_SEPARATELY();
        source = 'protocol';
      }
      if (r.code < 400 && paramError) {
        r = paramError;
        source = 'protocol';
      }
      // the policy said yes: the downstream has its say (once per address)
      const repeated = tx.rcpts.some((x) => x.address.toLowerCase() === address.address.toLowerCase());
      const downstream = r.code < 400 && decision && !repeated ? await askDownstream(rt, tx, address.address) : null;
      if (downstream?.reply) {
        r = downstream.reply;
        source = 'downstream';
      }
      metrics.rcptDecision(outcomeOf(r), source);
      if (!cached)
        for (const run of decision?.runs ?? []) if (run.script !== null) metrics.scriptRun(run.outcome, run.ms);
      const last = decision?.runs.at(-1);
      tx.log.info('rcpt.decision', {
        from: tx.from,
        to: address.address,
        route: route.kind,
        reply: formatReply(r),
        ip: s.client.ip,
        helo: s.helo,
        ...(decision ? { outcome: decision.outcome.kind, scripts: decision.runs.map(runSummary) } : {}),
        ...(decision?.outcome.kind === 'failed' ? { error: decision.outcome.reason } : {}),
        ...(cached ? { cached: true } : {}),
        ...(downstream ? { downstream: downstream.source, ...downstream.detail } : {}),
        ms: Date.now() - started,
      });
      if (last && decision?.outcome.kind === 'failed')
        tx.log.warn('policy.failed', {
          to: address.address,
          user: last.user,
          script: last.script,
          reason: decision.outcome.reason,
        });
      // no decision means a refused relay: always a 5xx
      if (r.code >= 400 || !decision) {
        s.counts.rejected++;
        return cb(new ReplyAsError(r));
      }
      tx.group = group;
      // a repeated RCPT for the same address (smtp-server compares case-insensitively) is one recipient
      if (!tx.rcpts.some((x) => x.address.toLowerCase() === address.address.toLowerCase())) {
        tx.rcpts.push({ address: address.address, route, decision });
        s.counts.rcpts++;
      }
      succeed(d, session, r, cb);
    })
    .catch((err: Error) => {
      const r = REPLIES.localError();
      metrics.rcptDecision(outcomeOf(r), 'error');
      tx.log.error('rcpt.decision', {
        from: tx.from,
        to: address.address,
        reply: formatReply(r),
        error: err.message,
        stack: err.stack,
      });
      cb(new ReplyAsError(r));
    });
}

function outcomeOf(r: Reply): DecisionOutcome {
  return r.code < 400 ? 'accepted' : r.code < 500 ? 'deferred' : 'rejected';
}

function runSummary(r: ScriptRun): Record<string, unknown> {
  return {
    user: r.user,
    uid: r.uid,
    script: r.script,
    outcome: r.outcome,
    ms: r.ms,
    ...(r.detail ? { detail: r.detail } : {}),
    ...(r.stderr ? { stderr: r.stderr } : {}),
  };
}

/** Route, then (for everything but a refused relay) the recipient's policy; cached per (sender, rcpt). */
async function decide(
  rt: Runtime,
  s: Session,
  from: string,
  address: string,
  sourceRoute: boolean,
): Promise<{ route: Route; decision: RecipientDecision | null; cached: boolean }> {
  // an authenticated client may relay as a RelayNet client does (commands/auth.ts)
  const route = await rt.route(address, s.mayRelay || s.authUser !== null, sourceRoute);
  if (route.kind === 'denied') return { route, decision: null, cached: false };
  // every transaction's added fields need the facts, also when the decision is remembered
  const facts = route.kind === 'postmaster' ? null : await s.facts.settle();
  if (facts && s.tx) s.tx.facts = facts;
  const key = `${from}\0${address}`;
  const hit = s.decisions.get(key);
  if (hit) return { route, decision: hit, cached: true };
  const mailError = facts ? systemDefault(facts, rt.config, from, s.client.ip) : null;
  const decision = await decideRecipient(route, { connection: s, sender: from, address, mailError, facts }, rt.policy);
  // a temporary failure is not remembered: the client may try again in this session
  if (decision.reply.code < 400 || decision.reply.code >= 500) s.decisions.set(key, decision);
  return { route, decision, cached: false };
}

function replyForRoute(route: Route): Reply {
  return route.kind === 'denied' && route.reason === 'routing-characters'
    ? REPLIES.routingChars()
    : REPLIES.relayDenied();
}
