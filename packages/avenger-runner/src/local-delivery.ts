/*
 * local-delivery — a local delivery for the MTA (asmtpd's avenger.local): the first of the user's
 * ~/.avenger/local… files, or, when none exists, a fallback program (plain delivery), run as the
 * user with the message on stdin. The same lookup, checks and user switch as an rcpt script.
 *
 * SUMMARY
 *   runLocalDelivery(request, context) → Promise<LocalDeliveryResult>   in the calling process
 *     (avenger.local is the MTA's child, not a client of the runner process): context from
 *     createRunnerContext(settings).
 *   1. The account is resolved as for rcpt (settings.passwdFile or the system database).
 *   2. Who may run it: as root, the account itself if runnableProblem() allows it (never uid 0 —
 *      unlike an rcpt script, a uid-0 recipient is not mapped to AvengerUser, which could not
 *      write root's mailbox; nor a system account, nobody, group 0, asmtpd's own accounts). Not
 *      root (an MTA that already switched to the recipient, as Postfix's local(8) does for
 *      mailbox_command): only when this process runs as the account's uid.
 *   3. The first candidate that exists in ~/.avenger is checked (spawner.c find_script, with the
 *      user's ids) and run as `/bin/sh -c LOCAL_PRELUDE PATH` — the checked inode on fd 4, $0 its
 *      path — with request.stdinFd as stdin; none exists (or no ~/.avenger): request.fallback runs
 *      instead (argv, no shell). cwd = the home, entered as the user; environment from
 *      child-env.ts (DEFAULT of the candidate found from candidateEnv); the settings' limits; the
 *      group is SIGKILLed at timeoutMs.
 *   As root, the message file (stdinFd) is given to the account (fchown) before anything runs, so
 *   its filters can rewrite it in place (edinplace) for the commands after them.
 *
 * SECURITY
 *   Candidates must be `local` file names (no '/', no leading '.'); nothing of the request is
 *   shell text (the prelude is a constant, values are environment variables and argv elements).
 *   The message descriptor is reopened by the spawner through /proc/SELF/fd/N, read-only.
 */
import { fchownSync } from 'node:fs';
import { isValidCandidateName } from './protocol.js';
import { ranResult, runAsFor, surelyMissing, type RunAs, type RunnerContext } from './runner.js';
import { childEnvironment, requestedVariables } from './child-env.js';
import { PRELUDE_SCRIPT_FD } from './prelude.js';

/** What runs a local file: nothing but the checked script itself, sourced from fd 4. */
export const LOCAL_PRELUDE = `. /dev/fd/${PRELUDE_SCRIPT_FD}\n`;

export interface LocalDeliveryRequest {
  /** the recipient's account name */
  account: string;
  /** file names in ~/.avenger in lookup order: local, local+EXT…, local+default (policy/lookup.ts) */
  candidates: string[];
  /** extra variables for the candidate found (DEFAULT of a local+…default file) */
  candidateEnv?: Record<string, Record<string, string>>;
  /** SENDER, RECIPIENT, EXTENSION… (only the settings' envNames pass) */
  env: Record<string, string>;
  /** a descriptor of this process on a regular file holding the message */
  stdinFd: number;
  /** argv run as the account when no candidate exists (argv[0] an absolute path) */
  fallback: string[];
  timeoutMs: number;
}

export type LocalDeliveryResult =
  | { kind: 'unknown-user' }
  /** nothing ran: who the account is, or the script found, is not acceptable */
  | { kind: 'refused'; script: string | null; reason: string }
  | { kind: 'error'; reason: string }
  | {
      kind: 'ran';
      /** the local file that ran, or null for the fallback */
      script: string | null;
      exitCode: number | null;
      signal: string | null;
      timedOut: boolean;
      stdout: string;
      stderr: string;
      user: string;
      uid: number;
    };

const LOCAL_CANDIDATE = /^local(?:[^A-Za-z0-9][^/\0]*)?$/;

export async function runLocalDelivery(
  request: LocalDeliveryRequest,
  context: RunnerContext,
): Promise<LocalDeliveryResult> {
  const bad = request.candidates.find((c) => !isValidCandidateName(c) || !LOCAL_CANDIDATE.test(c));
  if (bad !== undefined || request.candidates.length === 0)
    return { kind: 'error', reason: `bad local file name ${JSON.stringify((bad ?? '').slice(0, 64))}` };
  if (!request.fallback[0]?.startsWith('/')) return { kind: 'error', reason: 'the fallback must be an absolute path' };
  const account = await context.accounts.lookup(request.account);
  if (account === null) return { kind: 'unknown-user' };
  if (!account.home.startsWith('/'))
    return { kind: 'refused', script: null, reason: `account ${account.name} has no absolute home directory` };
  if (account.uid === 0)
    return { kind: 'refused', script: null, reason: `account ${account.name} is uid 0: alias it to a person` };
  if (!context.privileged && account.uid !== context.selfUid)
    return {
      kind: 'refused',
      script: null,
      reason: `running as uid ${context.selfUid}, not as ${account.name} (uid ${account.uid}) or root`,
    };
  const runAs = await runAsFor(account, context);
  if (typeof runAs === 'string') return { kind: 'refused', script: null, reason: runAs };
  if (context.privileged) fchownSync(request.stdinFd, runAs.credentials.uid, runAs.credentials.gid);
  const dir = `${account.home.replace(/\/+$/, '')}/.avenger`;
  if (!surelyMissing(dir)) {
    const found = await runCandidate(request, context, runAs, dir);
    if (found !== null) return found;
  }
  return runFallback(request, context, runAs);
}

/** The first existing candidate, run; null when none exists. */
async function runCandidate(
  request: LocalDeliveryRequest,
  context: RunnerContext,
  runAs: RunAs,
  dir: string,
): Promise<LocalDeliveryResult | null> {
  const candidates = request.candidates.map((name) => {
    const extra =
      request.candidateEnv !== undefined && Object.hasOwn(request.candidateEnv, name)
        ? requestedVariables(request.candidateEnv[name], context.settings)
        : {};
    return { name, extraEnv: Object.entries(extra).map(([k, v]) => `${k}=${v}`) };
  });
  const outcome = await context.spawner.run({
    file: context.shellPath,
    args: ['-c', LOCAL_PRELUDE],
    env: childEnvironment(request.env, context.settings, runAs.account),
    cwd: runAs.account.home,
    decisionChannel: false,
    stdinFd: request.stdinFd,
    lookup: { asUser: context.privileged, dir, candidates },
    timeoutMs: request.timeoutMs,
    maxOutputBytes: context.maxOutputBytes,
    liveGroups: context.liveGroups,
    ...runAs.credentials,
  });
  switch (outcome.kind) {
    case 'spawn-error':
      return { kind: 'error', reason: outcome.reason };
    case 'no-script':
      if (outcome.result === 'none') return null;
      if (outcome.result === 'error') return { kind: 'error', reason: outcome.reason };
      return {
        kind: 'refused',
        script: `${dir}/${request.candidates[outcome.tried - 1] ?? ''}`,
        reason: outcome.reason,
      };
    case 'exited':
      return ran(outcome, runAs, `${dir}/${request.candidates[outcome.found] ?? ''}`);
  }
}

/** No local file: the fallback program (plain delivery), as the account. */
async function runFallback(
  request: LocalDeliveryRequest,
  context: RunnerContext,
  runAs: RunAs,
): Promise<LocalDeliveryResult> {
  const argv = request.fallback;
  const outcome = await context.spawner.run({
    file: argv[0]!,
    args: argv.slice(1),
    env: childEnvironment(request.env, context.settings, runAs.account),
    cwd: runAs.account.home,
    decisionChannel: false,
    stdinFd: request.stdinFd,
    timeoutMs: request.timeoutMs,
    maxOutputBytes: context.maxOutputBytes,
    liveGroups: context.liveGroups,
    ...runAs.credentials,
  });
  if (outcome.kind === 'spawn-error') return { kind: 'error', reason: outcome.reason };
  if (outcome.kind === 'no-script') return { kind: 'error', reason: outcome.reason };
  return ran(outcome, runAs, null);
}

function ran(
  outcome: Parameters<typeof ranResult>[0],
  runAs: RunAs,
  script: string | null,
): Extract<LocalDeliveryResult, { kind: 'ran' }> {
  const r = ranResult(outcome, runAs.account.name, runAs.credentials.uid, [], null, null);
  return {
    kind: 'ran',
    script,
    exitCode: r.exitCode,
    signal: r.signal,
    timedOut: r.timedOut,
    stdout: r.stdout,
    stderr: r.stderr,
    user: r.user,
    uid: r.uid,
  };
}
