/*
 * spawner — the runner's side of libexec/spawner (spawner.c), the small forker that starts every child.
 *
 * SUMMARY
 *   Node's spawn({uid, gid}) clears supplementary groups and cannot set resource limits, and
 *   exec'ing setpriv(1) first costs a whole extra exec on every RCPT (measured: ~40% of the
 *   rate). So the runner keeps one small C process that starts each child without copying any
 *   memory (clone with CLONE_VM|CLONE_VFORK), sets groups, gid and uid (when root), checks them,
 *   sets the scripts' resource limits, enters the working directory as the user and execs the
 *   program directly; it relays the child's output and wait status back. Descriptors the runner
 *   opened (stdin) reach it as /proc/RUNNER/fd/N paths, which re-open the very same inodes.
 *   The runner keeps the clock: at timeoutMs it SIGKILLs the child's process group itself.
 *   Frame formats: see libexec/spawner.c. (Until issue 21 this was libexec/spawner.pl, perl with the
 *   same frames; bench/policy keeps that one to compare with.)
 *
 * PUBLIC
 *   class Spawner(limits, program?, programArgs?): run(spec) → Promise<ChildOutcome>, warmUp(), close()
 *   spawnerPath, ChildCredentials
 *
 * SECURITY
 *   The spawner runs with an EMPTY environment and no arguments but the limits. If it dies,
 *   pending runs fail with a spawn error and the next run starts a new one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { killGroup, type ChildOutcome, type ChildSpec, type ScriptLookupSpec } from './child.js';
import type { ScriptLimits } from './protocol.js';

/** The compiled forker (scripts/build-spawner.mjs, run by `pnpm build`). */
export const spawnerPath = fileURLToPath(new URL('../libexec/spawner', import.meta.url));

/** Who the child runs as: when the runner is not root, its own ids (the spawner then only checks them). */
export interface ChildCredentials {
  uid: number;
  gid: number;
  groups: number[];
}

export type PrivilegedChildSpec = ChildSpec & ChildCredentials;

interface PendingRun {
  spec: PrivilegedChildSpec;
  startedMs: number;
  pid?: number;
  found?: number;
  timedOut: boolean;
  timers: NodeJS.Timeout[];
  resolve: (outcome: ChildOutcome) => void;
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(osConstants.signals).map(([name, n]) => [n, name]));
/** After a timeout kill, how long to wait for the pipes before telling the spawner to give up on them. */
const ABANDON_AFTER_KILL_MS = 3000;

function frame(fields: string[]): string {
  const payload = fields.join('\0');
  return `${Buffer.byteLength(payload)}\n${payload}`;
}

function lookupFields(lookup: ScriptLookupSpec | undefined): string[] {
  if (lookup === undefined) return [];
  return [
    lookup.asUser ? '1' : '0',
    lookup.dir,
    ...lookup.candidates.flatMap((c) => [c.name, String(c.extraEnv.length), ...c.extraEnv]),
  ];
}

function procPath(fd: number | undefined): string {
  return fd === undefined ? '' : `/proc/${process.pid}/fd/${fd}`;
}

export class Spawner {
  private child: ChildProcess | null = null;
  private readonly pending = new Map<string, PendingRun>();
  private nextToken = 1;
  private inbox: Buffer = Buffer.alloc(0);
  private onIdle: (() => void) | null = null;
  /** set when the runner killed a spawner that did not start a child by its deadline */
  private stuck = false;

  constructor(
    private readonly limits: ScriptLimits,
    /** another program speaking the same frames (bench/policy runs the old perl one); the runner never sets it */
    private readonly program: string = spawnerPath,
    private readonly programArgs: string[] = [],
  ) {}

  private ensureStarted(): ChildProcess {
    if (this.child !== null) return this.child;
    const l = this.limits;
    const limits = `--limits=${[l.processes, l.cpuSeconds, l.dataBytes, l.fileBytes, l.openFiles].join(',')}`;
    const child = spawn(this.program, [...this.programArgs, limits], { env: {}, stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    this.inbox = Buffer.alloc(0);
    child.stdout?.on('data', (chunk: Buffer) => this.receive(chunk));
    child.stdin?.on('error', () => {});
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = null;
      const reason = this.stuck ? 'spawner stuck (no child started by the deadline): killed' : `spawner ${why}`;
      this.stuck = false;
      for (const [token, run] of this.pending) {
        if (run.pid !== undefined) killGroup(run.pid); // its reader is gone: nothing would report it
        this.settle(token, run, { kind: 'spawn-error', reason });
      }
    };
    child.on('error', (err) => gone(`failed: ${err.message}`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? `code ${code}`})`));
    this.holdOpen(this.pending.size > 0);
    return child;
  }

  /** An idle spawner must not keep the process alive (runInProcess in a command-line mode). */
  private holdOpen(busy: boolean): void {
    const child = this.child;
    if (child === null) return;
    for (const handle of [child, child.stdin, child.stdout] as Array<{ ref(): void; unref(): void } | null>) {
      if (busy) handle?.ref();
      else handle?.unref();
    }
  }

  /** Start the spawner now rather than on the first run. */
  warmUp(): void {
    this.ensureStarted();
  }

  run(spec: PrivilegedChildSpec): Promise<ChildOutcome> {
    const child = this.ensureStarted();
    const token = String(this.nextToken++);
    const env = Object.entries(spec.env).map(([name, value]) => `${name}=${value}`);
    const lookup = lookupFields(spec.lookup);
    const fields = [
      'run',
      token,
      String(spec.uid),
      String(spec.gid),
      spec.groups.join(' '),
      spec.cwd,
      procPath(spec.stdinFd),
      spec.decisionChannel ? '1' : '0',
      String(spec.maxOutputBytes),
      String(lookup.length),
      ...lookup,
      String(1 + spec.args.length),
      spec.file,
      ...spec.args,
      ...env,
    ];
    return new Promise((resolve) => {
      const run: PendingRun = { spec, startedMs: performance.now(), timedOut: false, timers: [], resolve };
      this.pending.set(token, run);
      this.holdOpen(true);
      run.timers.push(setTimeout(() => this.timeOut(token), spec.timeoutMs));
      child.stdin?.write(frame(fields));
    });
  }

  private timeOut(token: string): void {
    const run = this.pending.get(token);
    if (run === undefined) return;
    run.timedOut = true;
    // No pid by the deadline: the spawner has not even started this child (a healthy one answers
    // within milliseconds), so it is stuck (a lookup or a child's chdir on a hung filesystem).
    // Kill it: every pending run fails with a spawn error, the next run starts a new spawner,
    // and a child stuck before its exec dies with it (PR_SET_PDEATHSIG).
    if (run.pid === undefined) return this.killStuck();
    killGroup(run.pid);
    run.timers.push(setTimeout(() => this.child?.stdin?.write(frame(['abandon', token])), ABANDON_AFTER_KILL_MS));
  }

  private killStuck(): void {
    const child = this.child;
    if (child === null) return;
    this.stuck = true;
    child.kill('SIGKILL');
  }

  private settle(token: string, run: PendingRun, outcome: ChildOutcome): void {
    this.pending.delete(token);
    if (this.pending.size === 0) {
      this.holdOpen(false);
      this.onIdle?.();
    }
    run.timers.forEach(clearTimeout);
    if (run.pid !== undefined) run.spec.liveGroups?.delete(run.pid);
    run.resolve(outcome);
  }

  private receive(chunk: Buffer): void {
    this.inbox = this.inbox.length === 0 ? chunk : Buffer.concat([this.inbox, chunk]);
    for (;;) {
      const eol = this.inbox.indexOf(10);
      if (eol < 0) return;
      const [type, token = '', ...rest] = this.inbox.toString('latin1', 0, eol).split(' ');
      const run = this.pending.get(token);
      if (type === 'R') {
        const [status, trunc, outLen, errLen, decLen] = rest.map(Number) as [number, number, number, number, number];
        const end = eol + 1 + outLen + errLen + decLen;
        if (this.inbox.length < end) return;
        const body = this.inbox.subarray(eol + 1, end);
        this.inbox = this.inbox.subarray(end);
        if (run === undefined || run.pid === undefined) continue;
        const signalNumber = status & 0x7f;
        this.settle(token, run, {
          kind: 'exited',
          pid: run.pid,
          found: run.found ?? -1,
          exitCode: signalNumber === 0 ? status >> 8 : null,
          signal: signalNumber === 0 ? null : (SIGNAL_NAMES.get(signalNumber) ?? `signal ${signalNumber}`),
          timedOut: run.timedOut,
          stdout: Buffer.from(body.subarray(0, outLen)),
          stderr: Buffer.from(body.subarray(outLen, outLen + errLen)),
          decisionBytes: Buffer.from(body.subarray(outLen + errLen)),
          outputTruncated: trunc === 1,
          durationMs: Math.round((performance.now() - run.startedMs) * 1000) / 1000,
        });
        continue;
      }
      const text = this.inbox.toString('utf8', 0, eol);
      this.inbox = this.inbox.subarray(eol + 1);
      if (run === undefined) continue;
      if (type === 'S') {
        run.pid = Number(rest[0]);
        run.found = Number(rest[1]);
        run.spec.liveGroups?.add(run.pid);
        if (run.timedOut) killGroup(run.pid);
      } else if (type === 'E') {
        this.settle(token, run, { kind: 'spawn-error', reason: text.slice(3 + token.length) });
      } else if (type === 'X') {
        const [result, tried] = rest;
        const reason = text.split(' ').slice(4).join(' ');
        if (result === 'none' || result === 'refused' || result === 'error')
          this.settle(token, run, { kind: 'no-script', result, tried: Number(tried), reason });
        else this.settle(token, run, { kind: 'spawn-error', reason: `spawner: ${text.slice(0, 200)}` });
      }
    }
  }

  close(): void {
    this.child?.stdin?.end();
    this.child = null;
  }

  /** End the spawner once its children are done (ending its stdin earlier would kill them). */
  closeWhenIdle(): void {
    if (this.pending.size === 0) return this.close();
    this.onIdle = () => this.close();
  }
}
