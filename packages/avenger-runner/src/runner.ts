/*
 * runner — turn one RunRequest into one RunResult: resolve the account, refuse, look up and
 * check, run.
 *
 * SUMMARY
 *   createRunnerContext(settings, options?) → Promise<RunnerContext>   once, at start
 *   reloadRunnerContext(context, settings) → {context, changes, refused}   after a reload: the
 *     accounts, EtcDir, AvengerUser, variable names, fixed variables and limits take effect for
 *     new requests (a new spawner for new limits; the old one finishes its children first);
 *     the spool directory and the uids that never run anything need a restart (kept as they were)
 *   runRequest(request, context) → Promise<RunResult>
 *   runInProcess(request, settings) → Promise<RunResult>   the same in the calling process (tests,
 *                                                           asmtpd --avenge)
 *
 *   kind 'rcpt':  the runner resolves the account itself (settings.passwdFile, else the system
 *     database; AvengerUser falls back to the system database). scope 'user': the scripts are in
 *     HOME/.avenger of that account and run as it — an account with uid 0 has its scripts run as
 *     AvengerUser; scope 'system': EtcDir, as AvengerUser. The lookup of the candidates
 *     (script-lookup.ts) runs with the rights of the directory's owner (effective-ids.ts), then
 *     /bin/sh -c SHELL_PRELUDE SCRIPT runs with the script's O_PATH descriptor on fd 4 and the
 *     decision pipe on fd 3. A `bodytest` decision comes back with a token (grants.ts).
 *   kind 'bodytest': the granted argv (no shell; argv[0] searched in SAFE_PATH) as the granted
 *     account, with the spool file (spool-file.ts) as a seekable stdin.
 *   Both: environment from child-env.ts; cwd = the account's home (entered as the user); own
 *   process group; SIGKILL of the group at timeoutMs; output capped at MAX_OUTPUT_BYTES per
 *   stream; resource limits of the settings (libexec/spawner.c).
 *   Not root (a developer, a first run): every child runs as the invoking user; accounts are
 *   still resolved (for the directory), nothing is refused for being a system account, and the
 *   result says which uid was used.
 *
 * SECURITY
 *   As root, an account runs nothing if runnableProblem() objects (uid 0 after the AvengerUser
 *   mapping, group 0, nobody, asmtpd's own uids, system accounts other than AvengerUser). Nothing
 *   from the request is ever shell text. Descriptors the runner opens are close-on-exec; the
 *   child gets 0, 1, 2, 3 and (rcpt only) the O_PATH handle of its own script on 4.
 */
import { closeSync, existsSync, lstatSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  createAccounts,
  readUidMin,
  runnableProblem,
  withSystemFallback,
  type Account,
  type Accounts,
  type RunnableRule,
} from './accounts.js';
import type { ChildOutcome } from './child.js';
import { childEnvironment, requestedVariables } from './child-env.js';
import { BodyTestGrants } from './grants.js';
import { parseDecision, SHELL_PRELUDE } from './prelude.js';
import {
  MAX_OUTPUT_BYTES,
  type BodyTestRequest,
  type RcptRequest,
  type RunnerSettings,
  type RunResult,
} from './protocol.js';
import { Spawner, spawnerPath, type ChildCredentials } from './spawner.js';
import { openSpoolDirectory, openSpoolFile } from './spool-file.js';

export interface RunnerContext {
  /** True when running as root: children switch to the accounts the runner resolves. */
  privileged: boolean;
  selfUid: number;
  settings: RunnerSettings;
  accounts: Accounts;
  /** the same, with the system database behind a PasswdFile: for AvengerUser */
  avengerAccounts: Accounts;
  /** null when not root: nothing is refused for who it is */
  rule: RunnableRule | null;
  spawner: Spawner;
  spoolDirFd: number | null;
  grants: BodyTestGrants;
  shellPath: string;
  maxOutputBytes: number;
  /** Process groups of children still running (killed when the runner shuts down). */
  liveGroups: Set<number>;
}

export interface RunnerContextOptions {
  shellPath?: string;
  maxOutputBytes?: number;
  /** a reload: keep this context's spool directory, grants and live process groups */
  reuse?: RunnerContext;
}

export interface RunAs {
  account: Account;
  credentials: ChildCredentials;
}

export async function createRunnerContext(
  settings: RunnerSettings,
  options: RunnerContextOptions = {},
): Promise<RunnerContext> {
  const selfUid = process.getuid?.() ?? -1;
  const privileged = selfUid === 0;
  if (!existsSync(spawnerPath))
    throw new Error(`${spawnerPath} is missing (pnpm build compiles it): the runner starts every child through it`);
  if (privileged && !rootOnlyFile(spawnerPath))
    throw new Error(
      `${spawnerPath} (it starts every child, as root) must be root's, writable by root only, on a path only root can change`,
    );
  const accounts = createAccounts(settings.passwdFile);
  const avengerAccounts = settings.passwdFile ? withSystemFallback(accounts) : accounts;
  let rule: RunnableRule | null = null;
  if (privileged) {
    const avenger = await avengerAccounts.lookup(settings.avengerUser);
    if (!avenger) throw new Error(`AvengerUser ${settings.avengerUser} does not exist`);
    const deniedUids = [...settings.deniedUids, ...(settings.daemonUid === null ? [] : [settings.daemonUid])];
    rule = { uidMin: readUidMin(), avengerUid: avenger.uid, deniedUids };
    const problem = runnableProblem(avenger, await avengerAccounts.groups(avenger), rule);
    if (problem !== null) throw new Error(`AvengerUser cannot run scripts: ${problem}`);
  }
  if (privileged && settings.toolsDir !== null && !rootOnlyDirectory(settings.toolsDir))
    throw new Error(
      `${settings.toolsDir} (the scripts' utilities, first on their PATH) must be a directory that only root can change, on a path only root can change`,
    );
  const reuse = options.reuse;
  const spoolDirFd = reuse
    ? reuse.spoolDirFd
    : settings.spoolDir === null
      ? null
      : openSpoolDirectory(settings.spoolDir, privileged ? settings.daemonUid : null);
  return {
    privileged,
    selfUid,
    settings,
    accounts,
    avengerAccounts,
    rule,
    spoolDirFd,
    spawner: new Spawner(settings.limits),
    grants: reuse?.grants ?? new BodyTestGrants(),
    shellPath: options.shellPath ?? reuse?.shellPath ?? '/bin/sh',
    maxOutputBytes: options.maxOutputBytes ?? reuse?.maxOutputBytes ?? MAX_OUTPUT_BYTES,
    liveGroups: reuse?.liveGroups ?? new Set(),
  };
}

/** Settings a reload cannot change: fixed by root at start, with the descriptors opened then. */
const FIXED_SETTINGS = ['spoolDir', 'daemonUid', 'deniedUids'] as const;

export async function reloadRunnerContext(
  context: RunnerContext,
  wanted: RunnerSettings,
): Promise<{ context: RunnerContext; changes: string[]; refused: string[] }> {
  const old = context.settings;
  const refused = FIXED_SETTINGS.filter((k) => JSON.stringify(old[k]) !== JSON.stringify(wanted[k]));
  const settings: RunnerSettings = {
    ...wanted,
    spoolDir: old.spoolDir,
    daemonUid: old.daemonUid,
    deniedUids: old.deniedUids,
  };
  const changes = (Object.keys(settings) as Array<keyof RunnerSettings>).filter(
    (k) => JSON.stringify(old[k]) !== JSON.stringify(settings[k]),
  );
  if (changes.length === 0) return { context, changes, refused: [...refused] };
  const fresh = await createRunnerContext(settings, { reuse: context });
  if (changes.includes('limits')) context.spawner.closeWhenIdle();
  else fresh.spawner = context.spawner;
  return { context: fresh, changes, refused: [...refused] };
}

export function runRequest(request: RcptRequest | BodyTestRequest, context: RunnerContext): Promise<RunResult> {
  return request.kind === 'rcpt' ? runRcpt(request, context) : runBodyTest(request, context);
}

const refused = (reason: string): RunResult => ({ kind: 'refused', tried: [], script: null, reason });

/** The account's credentials as the child will have them (the runner's own when not root). */
async function credentialsOf(account: Account, accounts: Accounts, context: RunnerContext): Promise<ChildCredentials> {
  if (!context.privileged) return ownCredentials();
  return { uid: account.uid, gid: account.gid, groups: await accounts.groups(account) };
}

/** Who runs a script of `account`, or why nobody may (uid 0: AvengerUser; local-delivery.ts too). */
export async function runAsFor(account: Account, context: RunnerContext): Promise<RunAs | string> {
  const { settings } = context;
  let runAs = account;
  let source = account.name === settings.avengerUser ? context.avengerAccounts : context.accounts;
  if (account.uid === 0) {
    const avenger = await context.avengerAccounts.lookup(settings.avengerUser);
    if (!avenger) return `AvengerUser ${settings.avengerUser} does not exist`;
    runAs = avenger;
    source = context.avengerAccounts;
  }
  const credentials = await credentialsOf(runAs, source, context);
  if (context.rule !== null) {
    const problem = runnableProblem(runAs, credentials.groups, context.rule);
    if (problem !== null) return problem;
  }
  return { account: runAs, credentials };
}

async function runRcpt(request: RcptRequest, context: RunnerContext): Promise<RunResult> {
  const { settings } = context;
  const name = request.scope === 'system' ? settings.avengerUser : (request.account ?? '');
  const source = name === settings.avengerUser ? context.avengerAccounts : context.accounts;
  const owner = await source.lookup(name);
  if (!owner) return refused(`no account ${JSON.stringify(name.slice(0, 64))}`);
  if (request.scope === 'user' && !owner.home.startsWith('/'))
    return refused(`account ${owner.name} has no absolute home directory`);
  const runAs = await runAsFor(owner, context);
  if (typeof runAs === 'string') return refused(runAs);
  const dir =
    (request.scope === 'system' ? settings.etcDir : `${owner.home.replace(/\/+$/, '')}/.avenger`).replace(/\/+$/, '') ||
    '/';
  const tried = (n: number): string[] => request.candidates.slice(0, n).map((c) => `${dir === '/' ? '' : dir}/${c}`);
  // the common case (no ~/.avenger at all) is answered here, without a round trip to the spawner
  if (surelyMissing(dir)) return { kind: 'none', tried: tried(request.candidates.length) };
  const env = childEnvironment(request.env, settings, runAs.account);
  const candidates = request.candidates.map((c) => {
    const extra =
      request.candidateEnv !== undefined && Object.hasOwn(request.candidateEnv, c)
        ? requestedVariables(request.candidateEnv[c], settings)
        : {};
    return { name: c, extraEnv: Object.entries(extra).map(([k, v]) => `${k}=${v}`) };
  });
  const outcome = await context.spawner.run({
    file: context.shellPath,
    args: ['-c', SHELL_PRELUDE],
    env,
    cwd: runAs.account.home,
    decisionChannel: true,
    // the directory is looked at with the rights of the account that runs the script (the user
    // for ~/.avenger, AvengerUser for EtcDir); only root's own home is looked at by root
    lookup: { asUser: context.privileged && owner.uid !== 0, dir, candidates },
    timeoutMs: request.timeoutMs,
    maxOutputBytes: context.maxOutputBytes,
    liveGroups: context.liveGroups,
    ...runAs.credentials,
  });
  switch (outcome.kind) {
    case 'spawn-error':
      return { kind: 'error', reason: outcome.reason };
    case 'no-script':
      if (outcome.result === 'none') return { kind: 'none', tried: tried(outcome.tried) };
      if (outcome.result === 'error') return { kind: 'error', reason: outcome.reason };
      return {
        kind: 'refused',
        tried: tried(outcome.tried),
        script: tried(outcome.tried).at(-1) ?? null,
        reason: outcome.reason,
      };
    case 'exited': {
      const { decision, error } = parseDecision(outcome.decisionBytes);
      const found = request.candidates[outcome.found];
      const result = ranResult(
        outcome,
        runAs.account.name,
        runAs.credentials.uid,
        tried(outcome.found + 1),
        decision,
        error,
      );
      if (found !== undefined) result.script = `${dir === '/' ? '' : dir}/${found}`;
      if (decision?.verb === 'bodytest') {
        const extra = Object.fromEntries(
          (candidates[outcome.found]?.extraEnv ?? []).map((kv) => [
            kv.slice(0, kv.indexOf('=')),
            kv.slice(kv.indexOf('=') + 1),
          ]),
        );
        result.bodyTest = context.grants.issue({
          user: runAs.account.name,
          credentials: runAs.credentials,
          home: runAs.account.home,
          argv: decision.args,
          env: { ...env, ...extra },
        });
      }
      return result;
    }
  }
}

async function runBodyTest(request: BodyTestRequest, context: RunnerContext): Promise<RunResult> {
  const grant = context.grants.find(request.token);
  if (grant === null) return refused('unknown or expired body-test token');
  if (context.spoolDirFd === null) return refused('no spool directory');
  const opened = openSpoolFile(
    context.spoolDirFd,
    request.spool,
    context.privileged ? context.settings.daemonUid : null,
  );
  if ('refused' in opened) return refused(opened.refused);
  try {
    const outcome = await context.spawner.run({
      file: grant.argv[0] ?? '',
      args: grant.argv.slice(1),
      env: grant.env,
      cwd: grant.home,
      decisionChannel: false,
      stdinFd: opened.fd,
      timeoutMs: request.timeoutMs,
      maxOutputBytes: context.maxOutputBytes,
      liveGroups: context.liveGroups,
      ...grant.credentials,
    });
    if (outcome.kind !== 'exited')
      return { kind: 'error', reason: outcome.kind === 'spawn-error' ? outcome.reason : 'no program' };
    return ranResult(outcome, grant.user, grant.credentials.uid, [], null, null);
  } finally {
    closeSync(opened.fd);
  }
}

/** How long a directory's ancestors stay known to be root's (a home does not move often). */
const ANCESTRY_TTL_MS = 10_000;
const rootAncestry = new Map<string, { at: number; ok: boolean }>();

/**
 * base and every directory above it are real directories (no symbolic link), and every one above
 * base belongs to root and lets no one else swap the next name on the way: writable by root only,
 * or sticky (as /tmp) with that next directory root's. So a path through base leads where it says.
 */
function rootControlledPath(base: string): boolean {
  const hit = rootAncestry.get(base);
  const now = Date.now();
  if (hit && now - hit.at < ANCESTRY_TTL_MS) return hit.ok;
  let ok = true;
  try {
    const parts = base.split('/').filter((p) => p !== '');
    const paths = ['/', ...parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`)];
    const stats = paths.map((p) => lstatSync(p));
    ok =
      stats.every((st) => st.isDirectory()) &&
      paths.every((p, i) => {
        if (i === paths.length - 1) return true;
        const st = stats[i]!;
        if (st.uid !== 0) return false;
        return (st.mode & 0o022) === 0 || ((st.mode & 0o1000) !== 0 && stats[i + 1]!.uid === 0);
      });
  } catch {
    ok = false;
  }
  rootAncestry.set(base, { at: now, ok });
  if (rootAncestry.size > 10_000) rootAncestry.delete(rootAncestry.keys().next().value as string);
  return ok;
}

/** file is a regular file of root's, writable by root only, and reached on a path only root can change. */
export function rootOnlyFile(file: string): boolean {
  try {
    const st = lstatSync(file);
    return st.isFile() && st.uid === 0 && (st.mode & 0o022) === 0 && rootOnlyDirectory(dirname(file));
  } catch {
    return false;
  }
}

/** dir is root's, writable by root only, and reached on a path only root can change. */
function rootOnlyDirectory(dir: string): boolean {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === 0 && (st.mode & 0o022) === 0 && rootControlledPath(dir);
  } catch {
    return false;
  }
}

/**
 * True when dir surely does not exist, known without the spawner: its parent (the home) is on a
 * path only root can change (rootControlledPath), and lstat — which follows no link at the end —
 * finds nothing. Root learns only what is in the user's own home; anything else — it exists, or
 * the way to it is not root's — is "not sure": the spawner looks, with the user's rights.
 */
export function surelyMissing(dir: string): boolean {
  if (!rootControlledPath(dirname(dir))) return false;
  try {
    lstatSync(dir);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** This process's ids as the kernel has them (Node's getgroups() adds the egid, the kernel's list may not have it). */
function ownCredentials(): ChildCredentials {
  const groups = /^Groups:[ \t]*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]?.trim() ?? '';
  return {
    uid: process.getuid!(),
    gid: process.getgid!(),
    groups: groups === '' ? [] : groups.split(/\s+/).map(Number),
  };
}

type Ran = Extract<RunResult, { kind: 'ran' }>;

export function ranResult(
  outcome: Extract<ChildOutcome, { kind: 'exited' }>,
  user: string,
  uid: number,
  tried: string[],
  decision: Ran['decision'],
  decisionError: string | null,
): Ran {
  return {
    kind: 'ran',
    tried,
    decision,
    decisionError,
    exitCode: outcome.exitCode,
    signal: outcome.signal,
    timedOut: outcome.timedOut,
    stdout: outcome.stdout.toString('utf8'),
    stderr: outcome.stderr.toString('utf8'),
    outputTruncated: outcome.outputTruncated,
    durationMs: outcome.durationMs,
    user,
    uid,
  };
}

const inProcessContexts = new Map<string, Promise<RunnerContext>>();

/**
 * Run one request in the calling process (no runner process, no pipe). Sets the process umask
 * to 077, since children inherit it. For tests and diagnostic modes.
 */
export async function runInProcess(
  request: RcptRequest | BodyTestRequest,
  settings: RunnerSettings,
): Promise<RunResult> {
  const key = JSON.stringify(settings);
  let context = inProcessContexts.get(key);
  if (context === undefined) {
    process.umask(0o077);
    context = createRunnerContext(settings);
    inProcessContexts.set(key, context);
  }
  return runRequest(request, await context);
}
