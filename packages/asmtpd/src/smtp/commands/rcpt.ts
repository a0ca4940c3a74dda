/**
 * rcpt.ts — RCPT TO: route the address, settle the client's facts, verify a RelayDomain recipient
 * against its backend (relay/recipient-verifier.ts: a refusal there is the answer, and no script
 * runs for it; RelayNet, authenticated and RcptVerifySkip clients are not verified), run the recipient's policy
 * (remembered per sender and recipient for the session), then — the policy said yes — ask the
 * downstream (relay begin(): the before-queue proxy opens the downstream transaction at the first
 * accepted RCPT, downstream.ts): its refusal refuses this recipient only, with its own reply.
 *
 *   onRcptTo(deps, address, session, cb)      logs rcpt.decision (and policy.failed, rcpt.unknown,
 *                                             rcpt.verify_failed, session.blocked)
 * First of all, a client blocked meanwhile (issue 19: dictionary-attack blocking) is cut with
 * 421 4.7.1 and the connection closed. A recipient refused as unknown (no such user, the backend,
 * a script's reject with 5.1.1) is logged as rcpt.unknown and counted (Runtime.abuse).
 * A RelayDomain recipient is not asked of RelayHost's downstream: it is delivered to its backend.
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
import type { Verification } from '../../relay/recipient-verifier.js';

/** RCPT_VERIFY of a RelayDomain recipient: the verifier's status, or why it was not asked */
type RcptVerify = Verification | { status: 'skipped' | 'unverified'; reply: null; detail?: string };

export function onRcptTo(d: CommandDeps, address: SMTPServerAddress, session: SMTPServerSession, cb: Callback): void {
  const s = d.sessionOf(session);
  const tx = s?.tx;
  if (!s || !tx) return cb(new ReplyAsError(REPLIES.localError()));
  const rt = d.runtime();
  // blocked meanwhile (issue 19: by this session's own refusals or another's): cut at this RCPT
  const exempt = s.authUser !== null || rt.neverBlocked(s.client.ip);
  const block = exempt ? null : rt.abuse.blocked(s.client.ip);
  if (block) {
    const r = REPLIES.blockedTempfail();
    metrics.blockCut();
    metrics.rcptDecision('deferred', 'protocol');
    s.log.warn('session.blocked', {
      ip: s.client.ip,
      net: block.net,
      until: new Date(block.until).toISOString(),
      reply: formatReply(r),
      at: 'rcpt',
      to: address.address,
    });
    cb(new ReplyAsError(r));
    d.connOf(session)?.conn.close();
    return;
  }
  // a parameter we do not take (555) refuses a recipient the policy would accept; a refusal wins
  const paramError = rcptParamProblem(address.args);
  const sourceRoute = (address as { sourceRoute?: boolean }).sourceRoute === true;
  const started = Date.now();
  decide(rt, s, tx.from, address.address, sourceRoute)
    .then(async ({ route, decision, cached, verification }) => {
      let r = decision?.reply ?? verification?.reply ?? replyForRoute(route);
      let source: DecisionSource = cached ? 'cache' : (decision?.decidedBy ?? 'route');
      if (!decision && verification?.reply) source = 'downstream';
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
      const downstream =
        r.code < 400 && decision && !repeated && route.kind !== 'relay-domain' && route.kind !== 'hold-domain'
          ? await askDownstream(rt, tx, address.address)
          : null;
      if (downstream?.reply) {
        r = downstream.reply;
        source = 'downstream';
      }
      metrics.rcptDecision(outcomeOf(r), source);
      if (verification) metrics.rcptVerify(verification.status);
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
        ...(verification ? verifyFields(verification) : {}),
        ms: Date.now() - started,
      });
      if (
        verification?.detail !== undefined &&
        (verification.status === 'tempfail' || verification.status === 'unverified')
      )
        tx.log.warn('rcpt.verify_failed', {
          to: address.address,
          detail: verification.detail,
          result: verification.status,
        });
      const unknownSource =
        verification?.status === 'invalid' || verification?.status === 'cached-invalid'
          ? 'backend'
          : route.kind === 'unknown' && decision?.decidedBy === 'route' && r.code >= 500
            ? 'local'
            : // a script's `reject` with 5.1.1 ("no such user") is an unknown recipient too
              decision?.outcome.kind === 'reject' && r.code >= 500 && r.enhanced === '5.1.1'
              ? 'script'
              : null;
      if (unknownSource) {
        tx.log.info('rcpt.unknown', {
          ip: s.client.ip,
          to: address.address,
          source: unknownSource,
          reply: formatReply(r),
        });
        rt.abuse.unknown(s.client.ip, address.address, exempt);
      }
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
        tx.rcpts.push({
          address: address.address,
          route,
          decision,
          ...(verification ? { verify: verification.status } : {}),
        });
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

function verifyFields(v: RcptVerify): Record<string, unknown> {
  return {
    verify: v.status,
    ...('backend' in v && v.backend ? { backend: v.backend } : {}),
    ...(v.detail !== undefined ? { verify_detail: v.detail } : {}),
    ...('shared' in v && v.shared ? { shared: true } : {}),
  };
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
): Promise<{ route: Route; decision: RecipientDecision | null; cached: boolean; verification: RcptVerify | null }> {
  // an authenticated client may relay as a RelayNet client does (commands/auth.ts)
  const ours = s.mayRelay || s.authUser !== null;
  const route = await rt.route(address, ours, sourceRoute);
  if (route.kind === 'denied') return { route, decision: null, cached: false, verification: null };
  // a RelayDomain recipient is asked of its backend while the facts settle
  const verifying: Promise<RcptVerify> | null =
    route.kind !== 'relay-domain'
      ? null
      : ours || rt.verifySkip.has(s.client.ip)
        ? Promise.resolve({ status: 'skipped', reply: null })
        : rt.verifier
          ? rt.verifier.verify(address, route.backend.backends)
          : Promise.resolve({ status: 'unverified', reply: null, detail: 'no verifier in this mode' });
  // every transaction's added fields need the facts, also when the decision is remembered
  const facts = route.kind === 'postmaster' ? null : await s.facts.settle();
  if (facts && s.tx) s.tx.facts = facts;
  const verification = verifying ? await verifying : null;
  // refused (or deferred) by the backend: that is the answer, no script runs for it
  if (verification?.reply) return { route, decision: null, cached: false, verification };
  const key = `${from}\0${address}`;
  const hit = s.decisions.get(key);
  if (hit) return { route, decision: hit, cached: true, verification };
  const mailError = facts ? systemDefault(facts, rt.config, from, s.client.ip) : null;
  const decision = await decideRecipient(
    route,
    { connection: s, sender: from, address, mailError, facts, rcptVerify: verification?.status ?? null },
    rt.policy,
  );
  // a temporary failure is not remembered: the client may try again in this session
  if (decision.reply.code < 400 || decision.reply.code >= 500) s.decisions.set(key, decision);
  return { route, decision, cached: false, verification };
}

function replyForRoute(route: Route): Reply {
  return route.kind === 'denied' && route.reason === 'routing-characters'
    ? REPLIES.routingChars()
    : REPLIES.relayDenied();
}
