/*
 * main — the runner process: `node dist/main.js [--max-user-processes=N] [--launcher=spawner|setpriv]`.
 *
 * SUMMARY
 *   Started by the daemon (usually as root, before the daemon drops root). Announces itself
 *   with a ready line, then reads one JSON request per line on stdin and writes one
 *   {"id","result"} line per request on stdout, in completion order (see protocol.ts).
 *   Diagnostics go to stderr. At start it closes any descriptor it inherited without
 *   close-on-exec (descriptors.ts), so children get only what the runner gives them. When stdin ends, it kills the process groups of requests still
 *   running and exits.
 *
 *   --max-user-processes=N (default 512, 0 = no limit): when root, sets RLIMIT_NPROC of the
 *   runner to N once (with prlimit(1)); children inherit it. RLIMIT_NPROC counts *all* the
 *   processes of the target user, so it is a per-user cap on fork bombs, not a per-script
 *   count (a per-script count needs a cgroup per script: too slow for every RCPT). Root
 *   itself is exempt, so the runner is not limited.
 *
 *   --launcher=setpriv: exec setpriv(1) for each child instead of using the perl spawner
 *   (slower; see runner.ts). The default picks the spawner when root.
 *
 * SECURITY
 *   umask 077 for every child. Trusts only its stdin (the daemon's pipe); see runner.ts.
 */
import { spawnSync } from 'node:child_process';
import { killGroup } from './child-run.js';
import { closeInheritedDescriptors } from './descriptors.js';
import { readLines, PROTOCOL_VERSION, validateRequest, type ReadyMessage, type ResultMessage, type RunResult } from './protocol.js';
import { detectRunnerContext, runRequest } from './runner.js';

const DEFAULT_MAX_USER_PROCESSES = 512;

function log(message: string): void {
  process.stderr.write(`avenger-runner[${process.pid}]: ${message}\n`);
}

interface MainOptions {
  maxUserProcesses: number;
  launcher?: 'spawner' | 'setpriv';
}

function parseArgs(argv: string[]): MainOptions {
  const options: MainOptions = { maxUserProcesses: DEFAULT_MAX_USER_PROCESSES };
  for (const arg of argv) {
    const limit = /^--max-user-processes=(\d+)$/.exec(arg)?.[1];
    const launcher = /^--launcher=(spawner|setpriv)$/.exec(arg)?.[1];
    if (limit !== undefined) options.maxUserProcesses = Number(limit);
    else if (launcher === 'spawner' || launcher === 'setpriv') options.launcher = launcher;
    else throw new Error(`unknown argument ${arg}`);
  }
  return options;
}

function limitUserProcesses(limit: number): void {
  const r = spawnSync('prlimit', [`--pid=${process.pid}`, `--nproc=${limit}:${limit}`], {
    env: { PATH: '/usr/bin:/bin' },
    encoding: 'utf8',
  });
  if (r.status !== 0) log(`warning: could not set RLIMIT_NPROC to ${limit}: ${r.error?.message ?? r.stderr.trim()}`);
}

function main(): void {
  let options: MainOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    log((err as Error).message);
    process.exit(2);
  }
  process.umask(0o077);
  try {
    closeInheritedDescriptors();
  } catch (err) {
    log(`warning: cannot check inherited descriptors: ${(err as Error).message}`);
  }
  const context = options.launcher !== undefined ? detectRunnerContext({ launcher: options.launcher }) : detectRunnerContext();
  // the limit first: the perl spawner forks every child and must inherit it (started before, it
  // kept the old limit and no script was limited)
  if (context.privileged && options.maxUserProcesses > 0) limitUserProcesses(options.maxUserProcesses);
  context.spawner?.warmUp();
  if (!context.privileged) log(`not running as root: every child runs as uid ${context.selfUid}`);

  const send = (message: ResultMessage | ReadyMessage): void => {
    process.stdout.write(`${JSON.stringify(message)}\n`);
  };
  process.stdout.on('error', () => {
    /* the daemon is gone; stdin's end will follow */
  });

  const handleLine = (line: string): void => {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      log('ignoring a line that is not JSON');
      send({ id: null, result: { kind: 'error', reason: 'bad request: not JSON' } });
      return;
    }
    const rawId = (parsed as { id?: unknown } | null)?.id;
    const id = typeof rawId === 'number' ? rawId : null;
    const checked = validateRequest(parsed);
    if (!checked.ok) {
      send({ id, result: { kind: 'error', reason: checked.reason } });
      return;
    }
    const pending = runRequest(checked.request, context).catch(
      (err: unknown): RunResult => ({ kind: 'error', reason: `runner bug: ${(err as Error).message}` }),
    );
    void pending.then((result) => send({ id, result }));
  };

  readLines(process.stdin, {
    onLine: handleLine,
    onFatal(err) {
      log(`fatal: ${err.message}`);
      process.exit(1);
    },
    onEnd() {
      for (const pid of context.liveGroups) killGroup(pid);
      process.exit(0);
    },
  });

  send({ kind: 'ready', version: PROTOCOL_VERSION, pid: process.pid, privileged: context.privileged, uid: context.selfUid });
}

main();
