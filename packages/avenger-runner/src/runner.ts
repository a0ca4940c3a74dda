/*
 * runner — turn one RunRequest into one RunResult: refuse, look up and check, switch user, run.
 *
 * SUMMARY
 *   kind 'rcpt':    findScript(dir, candidates) → /bin/sh -c SHELL_PRELUDE SCRIPT with the
 *                   script's O_PATH descriptor on fd 4 and the decision pipe on fd 3.
 *   kind 'command': argv directly (no shell), argv[0] searched in SAFE_PATH.
 *   Both: stdin = stdinPath opened read-only by the runner (seekable) or /dev/null; cwd = home;
 *   environment = request env with PATH forced to SAFE_PATH; own process group; SIGKILL of the
 *   group at timeoutMs; output capped at MAX_OUTPUT_BYTES per stream.
 *
 *   Privileged (the runner is root): the perl spawner (spawner.ts) forks, switches groups, gid
 *   and uid, and execs PROGRAM; or, with launcher 'setpriv', the child is
 *     setpriv --reuid=UID --regid=GID --groups=G1,G2… --inh-caps=-all -- PROGRAM…
 *   (Node's own spawn({uid, gid}) would clear the supplementary groups.) The umask of the
 *   runner process is 077 and children inherit it.
 *   Unprivileged (a developer, a first run): the child runs as the invoking user; uid, gid and
 *   groups of the request are ignored and the result says which uid was used.
 *
 * PUBLIC
 *   detectRunnerContext(options?) → RunnerContext
 *   runRequest(request, context) → Promise<RunResult>
 *   runInProcess(request) → Promise<RunResult>   (same, in the calling process: tests, diagnostics)
 *
 * SECURITY
 *   A request for uid 0 is refused, privileged or not. Nothing from the request is ever shell
 *   text. Descriptors the runner opens are close-on-exec; the child gets 0, 1, 2, 3 and (rcpt
 *   only) the O_PATH handle of its own script on 4.
 */
import { constants, existsSync, openSync, readFileSync } from 'node:fs';
import { runChild, type ChildOutcome, type ChildSpec } from './child-run.js';
import { PerlSpawner } from './spawner.js';
import { parseDecision, SHELL_PRELUDE } from './prelude.js';
import { MAX_OUTPUT_BYTES, SAFE_PATH, type RunRequest, type RunResult } from './protocol.js';
import { closeQuietly, findScript } from './script-lookup.js';

/**
 * How a child becomes the user: 'spawner' (perl forker, the default as root), 'setpriv'
 * (exec setpriv(1) first: slower, used when perl is missing or the runner has inheritable
 * capabilities, which setpriv --inh-caps=-all clears), 'direct' (not root: no switch).
 */
export type Launcher = 'spawner' | 'setpriv' | 'direct';

export interface RunnerContext {
  /** True when running as root: children switch to the requested uid/gid/groups. */
  privileged: boolean;
  launcher: Launcher;
  spawner: PerlSpawner | null;
  /** The runner's own uid (used for children when not privileged). */
  selfUid: number;
  setprivPath: string;
  shellPath: string;
  maxOutputBytes: number;
  /** Process groups of children still running (killed when the runner shuts down). */
  liveGroups: Set<number>;
}

export interface RunnerContextOptions {
  launcher?: Launcher;
  perlPath?: string;
  setprivPath?: string;
  shellPath?: string;
  maxOutputBytes?: number;
}

function hasInheritableCapabilities(): boolean {
  try {
    const capInh = /^CapInh:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return capInh !== undefined && /[1-9a-f]/.test(capInh);
  } catch {
    return true;
  }
}

export function detectRunnerContext(options: RunnerContextOptions = {}): RunnerContext {
  const selfUid = process.getuid?.() ?? -1;
  const privileged = selfUid === 0;
  const perlPath = options.perlPath ?? '/usr/bin/perl';
  let launcher: Launcher = 'direct';
  if (privileged) {
    // Never 'direct' as root: that would run scripts as root.
    if (options.launcher === 'spawner' || options.launcher === 'setpriv') launcher = options.launcher;
    else launcher = existsSync(perlPath) && !hasInheritableCapabilities() ? 'spawner' : 'setpriv';
  }
  return {
    privileged,
    launcher,
    spawner: launcher === 'spawner' ? new PerlSpawner(perlPath) : null,
    selfUid,
    setprivPath: options.setprivPath ?? '/usr/bin/setpriv',
    shellPath: options.shellPath ?? '/bin/sh',
    maxOutputBytes: options.maxOutputBytes ?? MAX_OUTPUT_BYTES,
    liveGroups: new Set(),
  };
}

/** The program and arguments that run `command` as the request's user. */
function launchAs(request: RunRequest, command: string[], context: RunnerContext): { file: string; args: string[] } {
  if (context.launcher !== 'setpriv') return { file: command[0] ?? '', args: command.slice(1) };
  const groups = [...new Set(request.groups)];
  return {
    file: context.setprivPath,
    args: [
      `--reuid=${request.uid}`,
      `--regid=${request.gid}`,
      groups.length > 0 ? `--groups=${groups.join(',')}` : '--clear-groups',
      '--inh-caps=-all',
      '--',
      ...command,
    ],
  };
}

function describeSpawnError(reason: string, request: RunRequest): string {
  return existsSync(request.home) ? reason : `${reason} (home ${request.home} does not exist)`;
}

export async function runRequest(request: RunRequest, context: RunnerContext): Promise<RunResult> {
  if (request.uid === 0) {
    return { kind: 'refused', tried: [], script: null, reason: 'refusing to run anything as uid 0' };
  }
  if (context.launcher === 'setpriv' && !existsSync(context.setprivPath)) {
    return { kind: 'error', reason: `${context.setprivPath} is missing: cannot switch users` };
  }
  const runUid = context.privileged ? request.uid : context.selfUid;

  let tried: string[] = [];
  let script: string | undefined;
  let scriptFd: number | undefined;
  let stdinFd: number | undefined;
  let command: string[];
  let env: Record<string, string> = request.env;
  if (request.kind === 'rcpt') {
    const found = findScript(request.dir, request.candidates, runUid);
    if (found.kind !== 'found') return found;
    ({ tried, script, fd: scriptFd } = found);
    const extra = request.candidateEnv !== undefined && Object.hasOwn(request.candidateEnv, found.name) ? request.candidateEnv[found.name] : undefined;
    if (extra !== undefined) env = { ...env, ...extra };
    command = [context.shellPath, '-c', SHELL_PRELUDE, script];
  } else {
    command = request.argv;
  }

  try {
    if (request.stdinPath !== undefined) {
      try {
        stdinFd = openSync(request.stdinPath, constants.O_RDONLY | constants.O_NOCTTY);
      } catch (err) {
        return { kind: 'error', reason: `cannot open stdin ${request.stdinPath}: ${(err as NodeJS.ErrnoException).code}` };
      }
    }
    const { file, args } = launchAs(request, command, context);
    const spec: ChildSpec = {
      file,
      args,
      env: { ...env, PATH: SAFE_PATH },
      cwd: request.home,
      decisionChannel: request.kind === 'rcpt',
      timeoutMs: request.timeoutMs,
      maxOutputBytes: context.maxOutputBytes,
      liveGroups: context.liveGroups,
    };
    if (stdinFd !== undefined) spec.stdinFd = stdinFd;
    if (scriptFd !== undefined) spec.scriptFd = scriptFd;
    // stdinFd and scriptFd stay open until the end: the spawner re-opens them via /proc.
    const outcome: ChildOutcome =
      context.spawner !== null
        ? await context.spawner.run({ ...spec, uid: request.uid, gid: request.gid, groups: [...new Set(request.groups)] })
        : await runChild(spec);
    if (outcome.kind === 'spawn-error') return { kind: 'error', reason: describeSpawnError(outcome.reason, request) };

    const { decision, error } = request.kind === 'rcpt' ? parseDecision(outcome.decisionBytes) : { decision: null, error: null };
    const result: RunResult = {
      kind: 'ran',
      tried,
      decision,
      decisionError: error,
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      timedOut: outcome.timedOut,
      stdout: outcome.stdout.toString('utf8'),
      stderr: outcome.stderr.toString('utf8'),
      outputTruncated: outcome.outputTruncated,
      durationMs: outcome.durationMs,
      uid: runUid,
    };
    if (script !== undefined) result.script = script;
    return result;
  } finally {
    closeQuietly(stdinFd);
    closeQuietly(scriptFd);
  }
}

let inProcessContext: RunnerContext | undefined;

/**
 * Run one request in the calling process (no runner process, no pipe). Sets the process umask
 * to 077 the first time, since children inherit it. For tests and diagnostic modes.
 */
export function runInProcess(request: RunRequest, options?: RunnerContextOptions): Promise<RunResult> {
  if (inProcessContext === undefined || options !== undefined) {
    process.umask(0o077);
    inProcessContext = detectRunnerContext(options);
  }
  return runRequest(request, inProcessContext);
}
