/**
 * decide.ts — the RCPT-time policy for one recipient (avenger.md §1–§2): which script, run as
 * whom, and what its outcome means.
 *
 *   decideRecipient(route, request, deps) -> RecipientDecision {outcome, reply, runs}
 *
 * user      → ~/.avenger/rcpt… (lookup.ts) as the user; root recipients run as AvengerUser
 * unknown   → EtcDir/unknown as AvengerUser; no such file → 550 5.1.1 no such user here
 * relay     → EtcDir/relay as AvengerUser (also a RelayDomain recipient the backend did not refuse:
 *             RCPT_VERIFY says what the backend said)
 * aliases   → an alias that resolves to several targets has no owner: system default only
 * postmaster→ accepted (RFC 5321 §4.5.1), no script
 * A provisional accept (no file, or no decision) goes to the system default: MAIL_ERROR if set,
 * then EtcDir/default as AvengerUser. redirect re-runs the policy as another extension of the same
 * user or as an address of AvengerUser (at most MAX_REDIRECTS times). A script that fails, times
 * out or is refused (unsafe owner or modes) → 451 4.3.0, logged with the reason.
 */
import { join } from 'node:path';
import type { BodyTestRequest, RcptRequest, RunResult } from '@asmtpd/avenger-runner';
import type { Account } from '../recipients/accounts.js';
import type { Route } from '../recipients/route.js';
import { type Reply } from '../reply/reply.js';
import { scriptCandidates } from './lookup.js';
import { outcomeFromRun, replyForOutcome, type Outcome } from './outcome.js';
import { scriptEnvironment, type EnvContext } from './variables.js';
import type { ConnectionView } from './connection-view.js';
import type { FactValues } from '../facts/client-facts.js';
import { REPLIES } from '../reply/catalogue.js';

export const MAX_REDIRECTS = 5;

/** One script run, for logs and --avenge. */
export interface ScriptRun {
  user: string;
  uid: number;
  dir: string;
  tried: string[];
  script: string | null;
  outcome: Outcome['kind'];
  ms: number;
  env: Record<string, string>;
  detail?: string;
  /** what the script wrote on stderr (the first STDERR_LOG_CHARS characters): a command it
   * could not run (`escape: not found`) is seen in the log even when the script still decided */
  stderr?: string;
}

/** How much of a script's stderr a ScriptRun keeps. */
export const STDERR_LOG_CHARS = 300;

/**
 * Who decided (metrics: asmtpd_rcpt_decisions_total's source): the route without a script
 * (postmaster, no such user), a script (the recipient's, EtcDir/unknown or relay, a redirect's),
 * the system default (MAIL_ERROR, EtcDir/default, or accept when nothing decided), or an error
 * outside any script (AvengerUser missing).
 */
export type DecidedBy = 'route' | 'script' | 'system-default' | 'error';

export interface RecipientDecision {
  outcome: Outcome;
  decidedBy: DecidedBy;
  reply: Reply;
  /** the account a body test runs as (the one whose script asked for it) */
  account: Account | null;
  env: Record<string, string>;
  runs: ScriptRun[];
}

export interface PolicyDeps {
  run(req: RcptRequest | BodyTestRequest): Promise<RunResult>;
  /** the AvengerUser account (null: missing — scripts that need it are a local error) */
  avengerAccount(): Promise<Account | null>;
  /** route an address named by `redirect` */
  route(address: string): Promise<Route>;
  etcDir: string;
  /** true when EtcDir/NAME surely does not exist (saves a runner round trip) */
  systemScriptAbsent(name: string): boolean;
  separator: string | null;
  timeoutMs: number;
  avengerUser: string;
  /** variables the script helpers need (spf, dns, rbl): not facts, the same for every script */
  helperEnv: Readonly<Record<string, string>>;
}

export interface RecipientRequest {
  connection: ConnectionView;
  sender: string;
  address: string;
  mailError: Reply | null;
  facts: FactValues | null;
  /** RCPT_VERIFY: a RelayDomain recipient's verification (relay/recipient-verifier.ts); else absent */
  rcptVerify?: string | null;
}

const NO_SUCH_USER = REPLIES.noSuchUser;

export async function decideRecipient(
  route: Route,
  req: RecipientRequest,
  deps: PolicyDeps,
): Promise<RecipientDecision> {
  const runs: ScriptRun[] = [];
  const finish = (
    decidedBy: DecidedBy,
    outcome: Outcome,
    account: Account | null,
    env: Record<string, string>,
    r?: Reply,
  ): RecipientDecision => ({ outcome, decidedBy, reply: r ?? replyForOutcome(outcome), account, env, runs });

  let current: Route = route;
  let address = req.address;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    if (current.kind === 'denied' || current.kind === 'postmaster')
      return finish('route', { kind: 'accept', text: null }, null, {});
    const avenger = await deps.avengerAccount();
    let step: { outcome: Outcome; env: Record<string, string>; runAs: Account; owner: Account | null };
    if (current.kind === 'user') {
      const target = current.account;
      // scripts never run as root: a root recipient's policy runs as AvengerUser (the runner
      // decides that itself; this is for the logs and the environment shown by --avenge)
      const runAs = target.uid === 0 ? avenger : target;
      if (!runAs)
        return finish('error', { kind: 'failed', reason: `AvengerUser ${deps.avengerUser} does not exist` }, null, {});
      const lookup = scriptCandidates(current.extension, deps.separator ?? '+');
      if (lookup.kind === 'invalid') return finish('route', { kind: 'reject', reply: NO_SUCH_USER() }, null, {});
      const ran = await runScript(
        deps,
        req,
        address,
        { scope: 'user', owner: target, runAs },
        lookup.candidates,
        current.extension,
        runs,
      );
      step = { ...ran, runAs, owner: target };
    } else {
      // unknown, relay and multi-target aliases have no owner: EtcDir scripts as AvengerUser
      if (!avenger)
        return finish('error', { kind: 'failed', reason: `AvengerUser ${deps.avengerUser} does not exist` }, null, {});
      const file =
        current.kind === 'unknown'
          ? 'unknown'
          : current.kind === 'relay' || current.kind === 'relay-domain' || current.kind === 'hold-domain'
            ? 'relay'
            : null;
      step = { outcome: { kind: 'provisional' }, env: {}, runAs: avenger, owner: null };
      if (file) {
        const ran = await runScript(
          deps,
          req,
          address,
          { scope: 'system', runAs: avenger },
          [{ file, default: null }],
          null,
          runs,
        );
        step = { ...step, ...ran };
        if (ran.outcome.kind === 'provisional' && file === 'unknown' && runs.at(-1)?.script === null) {
          return finish('route', { kind: 'reject', reply: NO_SUCH_USER() }, null, ran.env);
        }
      }
    }
    const { outcome, env, runAs } = step;
    if (outcome.kind === 'redirect') {
      const next = await redirectTarget(deps, outcome.address, step.owner, avenger);
      if (!next)
        return finish('script', { kind: 'failed', reason: `redirect to ${outcome.address} is not allowed` }, null, env);
      current = next;
      address = outcome.address;
      continue;
    }
    if (outcome.kind !== 'provisional') return finish('script', outcome, runAs, env);
    if (!avenger) return finish('system-default', { kind: 'accept', text: null }, runAs, env);
    return systemDefault(deps, req, address, avenger, env, runs, finish);
  }
  return finish('script', { kind: 'failed', reason: `more than ${MAX_REDIRECTS} redirects` }, null, {});
}

/** A redirect may go to another extension of the same user, or to an address of AvengerUser. */
async function redirectTarget(
  deps: PolicyDeps,
  address: string,
  from: Account | null,
  avenger: Account | null,
): Promise<Route | null> {
  const r = await deps.route(address);
  if (r.kind !== 'user') return null;
  if (from && r.account.uid === from.uid && r.account.name === from.name) return r;
  if (avenger && r.account.name === avenger.name) return r;
  return null;
}

/** MAIL_ERROR first, then EtcDir/default as AvengerUser; still provisional → accept. */
async function systemDefault(
  deps: PolicyDeps,
  req: RecipientRequest,
  address: string,
  avenger: Account,
  env: Record<string, string>,
  runs: ScriptRun[],
  finish: (by: DecidedBy, o: Outcome, a: Account | null, e: Record<string, string>, r?: Reply) => RecipientDecision,
): Promise<RecipientDecision> {
  if (req.mailError) {
    const r = req.mailError;
    return finish(
      'system-default',
      r.code >= 500 ? { kind: 'reject', reply: r } : { kind: 'defer', reply: r },
      null,
      env,
    );
  }
  const d = await runScript(
    deps,
    req,
    address,
    { scope: 'system', runAs: avenger },
    [{ file: 'default', default: null }],
    null,
    runs,
  );
  if (d.outcome.kind === 'provisional') return finish('system-default', { kind: 'accept', text: null }, avenger, d.env);
  if (d.outcome.kind === 'redirect')
    return finish(
      'system-default',
      { kind: 'failed', reason: 'redirect is not allowed in EtcDir/default' },
      null,
      d.env,
    );
  return finish('system-default', d.outcome, avenger, d.env);
}

/** Whose scripts: a user's ~/.avenger (owner; runs as runAs) or EtcDir's (as AvengerUser). */
type ScriptOwner = { scope: 'user'; owner: Account; runAs: Account } | { scope: 'system'; runAs: Account };

async function runScript(
  deps: PolicyDeps,
  req: RecipientRequest,
  address: string,
  who: ScriptOwner,
  candidates: { file: string; default: string | null }[],
  extension: string | null,
  runs: ScriptRun[],
): Promise<{ outcome: Outcome; env: Record<string, string> }> {
  const started = Date.now();
  const { runAs } = who;
  const dir = who.scope === 'user' ? join(who.owner.home, '.avenger') : deps.etcDir;
  const envCtx: EnvContext = {
    connection: req.connection,
    sender: req.sender,
    rcpt: { address, user: runAs.name, home: runAs.home, extension, default: null },
    avengerUser: deps.avengerUser,
    mailError: req.mailError ? `${req.mailError.code} ${req.mailError.enhanced} ${req.mailError.text}` : null,
    tmpDir: '/tmp',
    facts: req.facts,
    rcptVerify: req.rcptVerify ?? null,
  };
  const env = scriptEnvironment(envCtx, deps.helperEnv);
  if (who.scope === 'system' && candidates.length === 1 && deps.systemScriptAbsent(candidates[0]!.file)) {
    runs.push({
      user: runAs.name,
      uid: runAs.uid,
      dir,
      tried: [join(dir, candidates[0]!.file)],
      script: null,
      outcome: 'provisional',
      ms: 0,
      env,
    });
    return { outcome: { kind: 'provisional' }, env };
  }
  // DEFAULT depends on which candidate the runner finds: it adds the entry of the file it runs
  const defaults = new Map(candidates.map((c) => [c.file, c.default]));
  const candidateEnv: Record<string, Record<string, string>> = {};
  for (const c of candidates) if (c.default !== null) candidateEnv[c.file] = { DEFAULT: c.default };
  const target =
    who.scope === 'user' ? { scope: 'user' as const, account: who.owner.name } : { scope: 'system' as const };
  const result = await deps.run({
    kind: 'rcpt',
    ...target,
    env,
    candidateEnv,
    candidates: candidates.map((c) => c.file),
    timeoutMs: deps.timeoutMs,
  });
  const script = result.kind === 'ran' || result.kind === 'refused' ? (result.script ?? null) : null;
  const scriptFile = script ? script.slice(script.lastIndexOf('/') + 1) : null;
  const def = scriptFile ? (defaults.get(scriptFile) ?? null) : null;
  if (def !== null) env.DEFAULT = def;
  const outcome = outcomeFromRun(result);
  runs.push({
    user: result.kind === 'ran' ? result.user : runAs.name,
    uid: result.kind === 'ran' ? result.uid : runAs.uid,
    dir,
    tried: 'tried' in result ? result.tried : [],
    script,
    outcome: outcome.kind,
    ms: Date.now() - started,
    env,
    ...(outcome.kind === 'failed' ? { detail: outcome.reason } : {}),
    ...(result.kind === 'ran' && result.stderr.trim() !== ''
      ? { stderr: result.stderr.trim().slice(0, STDERR_LOG_CHARS) }
      : {}),
  });
  return { outcome, env };
}
