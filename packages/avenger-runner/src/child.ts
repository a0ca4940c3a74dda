/*
 * child — what the spawner is asked to start and what it reports back, and the group kill.
 *
 * PUBLIC
 *   ChildSpec, ChildOutcome, killGroup(pid)
 *
 * SECURITY
 *   Each child leads its own session and process group; killGroup SIGKILLs the whole group, so
 *   a script's background jobs do not outlive it (something that calls setsid escapes the group
 *   but not the deadline: its pipes are abandoned).
 */
export interface ChildSpec {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** fd to use as stdin, or undefined for /dev/null. */
  stdinFd?: number;
  /** Open a decision pipe on fd 3. */
  decisionChannel: boolean;
  /** Find the script first (spawner.c find_script): it goes on fd 4 and its path is appended to args. */
  lookup?: ScriptLookupSpec;
  timeoutMs: number;
  maxOutputBytes: number;
  /** Registry of live process groups: the child's pid is in it from spawn until the result. */
  liveGroups?: Set<number>;
}

export interface ScriptLookupSpec {
  /** look with the child's ids (true), or as root (false: root's own home only) */
  asUser: boolean;
  dir: string;
  /** in lookup order; extraEnv ("NAME=VALUE") is added to the environment of the one found */
  candidates: Array<{ name: string; extraEnv: string[] }>;
}

export type ChildOutcome =
  | { kind: 'spawn-error'; reason: string }
  /** the lookup found nothing to run: none, an unsafe script (refused), or an error; tried = candidates looked at */
  | { kind: 'no-script'; result: 'none' | 'refused' | 'error'; tried: number; reason: string }
  | {
      kind: 'exited';
      pid: number;
      /** index of the script that ran among the candidates; -1 without a lookup */
      found: number;
      exitCode: number | null;
      signal: string | null;
      timedOut: boolean;
      stdout: Buffer;
      stderr: Buffer;
      decisionBytes: Buffer;
      outputTruncated: boolean;
      durationMs: number;
    };

/** SIGKILL the process group led by pid; a group that is already gone is fine. */
export function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* ESRCH: nobody left */
  }
}
