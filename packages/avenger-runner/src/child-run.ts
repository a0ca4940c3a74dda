/*
 * child-run — start one child in its own process group, capture its output, enforce the timeout.
 *
 * SUMMARY
 *   runChild(spec) spawns spec.file with spec.args, detached (setsid: the child leads a new
 *   session and process group), with exactly the descriptors listed in spec (0, 1, 2 and the
 *   optional 3 and 4), the given environment and cwd. stdout, stderr and fd 3 are read to the
 *   end; each keeps its first maxOutputBytes and drops the rest (the child never blocks on a
 *   full pipe). At timeoutMs the whole group gets SIGKILL. When the main process exits, the
 *   rest of its group is killed too: a script's background jobs do not outlive it.
 *
 * PUBLIC
 *   runChild(spec) → Promise<ChildOutcome>
 *   killGroup(pid)
 *
 * SECURITY
 *   Node opens every descriptor close-on-exec, so the child gets only what stdio lists.
 *   Processes that leave the group (setsid) escape the group kill; they cannot hold the result
 *   back longer than the timeout, because the pipes are abandoned at the deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';

export interface ChildSpec {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** fd to use as stdin, or undefined for /dev/null. */
  stdinFd?: number;
  /** Open a decision pipe on fd 3. */
  decisionChannel: boolean;
  /** fd to place on fd 4 (the script), if any. */
  scriptFd?: number;
  timeoutMs: number;
  maxOutputBytes: number;
  /** Registry of live process groups: the child's pid is in it from spawn until the result. */
  liveGroups?: Set<number>;
}

export type ChildOutcome =
  | { kind: 'spawn-error'; reason: string }
  | {
      kind: 'exited';
      pid: number;
      exitCode: number | null;
      signal: string | null;
      timedOut: boolean;
      stdout: Buffer;
      stderr: Buffer;
      decisionBytes: Buffer;
      outputTruncated: boolean;
      durationMs: number;
    };

/** Extra time the pipes get to drain after the main process has exited and its group was killed. */
const DRAIN_GRACE_MS = 1000;

/** SIGKILL the process group led by pid; a group that is already gone is fine. */
export function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* ESRCH: nobody left */
  }
}

class CappedSink {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  truncated = false;

  constructor(private readonly maxBytes: number) {}

  write(chunk: Buffer): void {
    const room = this.maxBytes - this.kept;
    if (room <= 0) {
      if (chunk.length > 0) this.truncated = true;
      return;
    }
    const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (piece.length < chunk.length) this.truncated = true;
    this.chunks.push(piece);
    this.kept += piece.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.kept);
  }
}

function collect(stream: Readable | null | undefined, sink: CappedSink): void {
  stream?.on('data', (chunk: Buffer) => sink.write(chunk));
  stream?.on('error', () => {});
}

export function runChild(spec: ChildSpec): Promise<ChildOutcome> {
  const startedMs = performance.now();
  const stdio: Array<'ignore' | 'pipe' | number> = [spec.stdinFd ?? 'ignore', 'pipe', 'pipe'];
  if (spec.decisionChannel || spec.scriptFd !== undefined) stdio.push(spec.decisionChannel ? 'pipe' : 'ignore');
  if (spec.scriptFd !== undefined) stdio.push(spec.scriptFd);

  let child: ChildProcess;
  try {
    child = spawn(spec.file, spec.args, { cwd: spec.cwd, env: spec.env, stdio, detached: true, windowsHide: true });
  } catch (err) {
    return Promise.resolve({ kind: 'spawn-error', reason: `cannot start ${spec.file}: ${(err as Error).message}` });
  }

  return new Promise((resolve) => {
    const stdout = new CappedSink(spec.maxOutputBytes);
    const stderr = new CappedSink(spec.maxOutputBytes);
    const decision = new CappedSink(spec.maxOutputBytes);
    collect(child.stdout, stdout);
    collect(child.stderr, stderr);
    collect(child.stdio[3] as Readable | null | undefined, decision);

    let timedOut = false;
    let exitCode: number | null = null;
    let signal: string | null = null;
    let settled = false;
    let drainTimer: NodeJS.Timeout | undefined;
    let spawnError = 'unknown error';
    const pid = child.pid;
    if (pid !== undefined) spec.liveGroups?.add(pid);

    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(drainTimer);
      if (pid !== undefined) spec.liveGroups?.delete(pid);
      if (pid === undefined) {
        resolve({ kind: 'spawn-error', reason: `cannot start ${spec.file}: ${spawnError}` });
        return;
      }
      resolve({
        kind: 'exited',
        pid,
        exitCode,
        signal,
        timedOut,
        stdout: stdout.bytes(),
        stderr: stderr.bytes(),
        decisionBytes: decision.bytes(),
        outputTruncated: stdout.truncated || stderr.truncated,
        durationMs: Math.round((performance.now() - startedMs) * 1000) / 1000,
      });
    };
    const abandonPipes = (): void => {
      for (const s of child.stdio) (s as Readable | null)?.destroy();
      finish();
    };

    const deadline = setTimeout(() => {
      timedOut = true;
      if (pid !== undefined) killGroup(pid);
      // Something outside the group may still hold a pipe; do not wait for it past the grace.
      drainTimer ??= setTimeout(abandonPipes, DRAIN_GRACE_MS);
    }, spec.timeoutMs);

    child.on('error', (err) => {
      spawnError = err.message;
      if (pid === undefined) finish();
    });
    child.on('exit', (code, sig) => {
      exitCode = code;
      signal = sig;
      if (pid !== undefined) killGroup(pid);
      drainTimer ??= setTimeout(abandonPipes, DRAIN_GRACE_MS);
    });
    child.on('close', finish);
  });
}
