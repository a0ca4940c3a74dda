/*
 * protocol — the runner's request and result types, and their wire form.
 *
 * SUMMARY
 *   The daemon and the runner speak JSON lines over the runner's stdin/stdout:
 *     runner → daemon, once at start:  {"kind":"ready","version":1,"pid":N,"privileged":true,"uid":0}
 *     daemon → runner, per request:    {"id":7, ...RunRequest}
 *     runner → daemon, per result:     {"id":7,"result":RunResult}
 *   Requests are independent and may be in flight concurrently; results come back in
 *   completion order, matched by id. Anything the runner wants to say otherwise goes to stderr.
 *
 * PUBLIC
 *   RunRequest, RunResult, Decision, DecisionVerb, ReadyMessage, ResultMessage
 *   validateRequest(value) — shape and range checks on an untrusted-in-form request
 *   isValidCandidateName(name) — false for names with '/', NUL, or a leading '.'
 *   SAFE_PATH, MAX_OUTPUT_BYTES, PROTOCOL_VERSION
 *   LineSplitter — splits a byte stream into lines without holding more than one partial line
 *
 * SECURITY
 *   The runner trusts the daemon's pipe for *what* to run (which uid, which directory), but it
 *   still checks every field's type and range, refuses uid 0 (see runner.ts), and never lets a
 *   field reach shell text: values travel as environment variables and argv elements only.
 */

export const PROTOCOL_VERSION = 1;

/** The PATH every child gets, whatever the request says. */
export const SAFE_PATH = '/usr/local/bin:/usr/bin:/bin';

/** Bytes of stdout, of stderr and of the decision channel kept per child; the rest is read and dropped. */
export const MAX_OUTPUT_BYTES = 64 * 1024;

export type DecisionVerb = 'accept' | 'reject' | 'defer' | 'redirect' | 'bodytest';

export interface Decision {
  verb: DecisionVerb;
  /** accept/reject/defer: [] or [text]; redirect: [address]; bodytest: [command, ...args]. */
  args: string[];
}

interface RunRequestBase {
  /** Set by the client; echoed in the result message. */
  id?: number;
  uid: number;
  gid: number;
  /** Supplementary groups (usually including gid, as initgroups(3) would give). */
  groups: number[];
  /** For logs and diagnostics only: the runner does not look the user up. */
  user: string;
  /** Absolute path; the child's working directory. */
  home: string;
  /** The child's whole environment, except PATH, which the runner sets to SAFE_PATH. */
  env: Record<string, string>;
  /** A file the runner opens read-only (as root) and gives the child as stdin; else /dev/null. */
  stdinPath?: string;
  /** The whole process group is killed with SIGKILL after this long. */
  timeoutMs: number;
}

/** Find the first existing candidate in dir, check it, and run it through /bin/sh with the prelude. */
export interface RcptRequest extends RunRequestBase {
  kind: 'rcpt';
  /** Absolute path of the script directory, e.g. /home/bob/.avenger. */
  dir: string;
  /** File names in lookup order, e.g. ['rcpt+a+b', 'rcpt+a+default', 'rcpt+default']. */
  candidates: string[];
  /**
   * Extra variables for the candidate that is found, by file name, added over env (PATH still
   * forced): e.g. {'rcpt+a+default': {DEFAULT: 'b'}}, since only the runner knows which one runs.
   */
  candidateEnv?: Record<string, Record<string, string>>;
}

/** Run argv directly (no shell); argv[0] is looked up in SAFE_PATH. Used for body tests. */
export interface CommandRequest extends RunRequestBase {
  kind: 'command';
  argv: string[];
}

export type RunRequest = RcptRequest | CommandRequest;

export type RunResult =
  /** No candidate file exists (or the directory does not). */
  | { kind: 'none'; tried: string[] }
  /** A safety check failed; nothing ran. script is null when the request itself was refused (uid 0). */
  | { kind: 'refused'; tried: string[]; script: string | null; reason: string }
  /** A child ran (for 'command', tried is [] and script absent). */
  | {
      kind: 'ran';
      tried: string[];
      script?: string;
      /** The first decision the script wrote, or null (no decision, or an unreadable one). */
      decision: Decision | null;
      /** Set when the decision channel held something that is not a valid decision. */
      decisionError: string | null;
      exitCode: number | null;
      signal: string | null;
      timedOut: boolean;
      stdout: string;
      stderr: string;
      /** True if stdout or stderr was longer than MAX_OUTPUT_BYTES and was cut. */
      outputTruncated: boolean;
      durationMs: number;
      /** The uid the child actually ran as (the invoking user's when the runner is not root). */
      uid: number;
    }
  /** The runner could not do what was asked (bad request, spawn failure, runner gone). */
  | { kind: 'error'; reason: string };

export interface ReadyMessage {
  kind: 'ready';
  version: number;
  pid: number;
  /** True when the runner is root and switches to the requested users. */
  privileged: boolean;
  /** The runner's own uid. */
  uid: number;
}

export interface ResultMessage {
  id: number | null;
  result: RunResult;
}

/** A candidate file name the runner is willing to look up. */
export function isValidCandidateName(name: string): boolean {
  return name.length > 0 && !name.includes('/') && !name.includes('\0') && !name.startsWith('.');
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_ID = 0xfffffffe;

function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_ID;
}

function isCleanString(value: unknown): value is string {
  return typeof value === 'string' && !value.includes('\0');
}

function isAbsolutePath(value: unknown): value is string {
  return isCleanString(value) && value.startsWith('/');
}

/** Why env (a parsed object) is not a valid environment, or null. */
function envProblem(env: unknown, what: string): string | null {
  if (typeof env !== 'object' || env === null || Array.isArray(env)) return what;
  for (const [name, val] of Object.entries(env as Record<string, unknown>)) {
    if (!ENV_NAME.test(name)) return `${what} name ${JSON.stringify(name)}`;
    if (!isCleanString(val)) return `${what} value of ${name}`;
  }
  return null;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every(isCleanString);
}

/** Check a parsed request; returns the typed request or the first problem found. */
export function validateRequest(value: unknown): { ok: true; request: RunRequest } | { ok: false; reason: string } {
  const fail = (reason: string) => ({ ok: false as const, reason: `bad request: ${reason}` });
  if (typeof value !== 'object' || value === null) return fail('not an object');
  const r = value as Record<string, unknown>;
  if (r.kind !== 'rcpt' && r.kind !== 'command') return fail('kind must be "rcpt" or "command"');
  if (!isId(r.uid)) return fail('uid');
  if (!isId(r.gid)) return fail('gid');
  if (!Array.isArray(r.groups) || r.groups.length > 65536 || !r.groups.every(isId)) return fail('groups');
  if (typeof r.user !== 'string') return fail('user');
  if (!isAbsolutePath(r.home)) return fail('home must be an absolute path');
  const badEnv = envProblem(r.env, 'env');
  if (badEnv !== null) return fail(badEnv);
  if (r.stdinPath !== undefined && !isAbsolutePath(r.stdinPath)) return fail('stdinPath must be an absolute path');
  if (typeof r.timeoutMs !== 'number' || !(r.timeoutMs > 0) || r.timeoutMs > 86_400_000) return fail('timeoutMs');
  if (r.kind === 'rcpt') {
    if (!isAbsolutePath(r.dir)) return fail('dir must be an absolute path');
    if (!isStringArray(r.candidates)) return fail('candidates');
    if (r.candidateEnv !== undefined) {
      if (typeof r.candidateEnv !== 'object' || r.candidateEnv === null || Array.isArray(r.candidateEnv)) return fail('candidateEnv');
      for (const [name, env] of Object.entries(r.candidateEnv as Record<string, unknown>)) {
        const bad = envProblem(env, `candidateEnv[${JSON.stringify(name)}]`);
        if (bad !== null) return fail(bad);
      }
    }
  } else {
    if (!isStringArray(r.argv) || r.argv.length === 0 || r.argv[0] === '') return fail('argv');
  }
  return { ok: true, request: value as RunRequest };
}

/**
 * Reads a child process's stdin as lines: onLine for each complete line, onFatal when a line grows
 * beyond maxLineBytes (the peer is broken), onEnd at end of input. The runner and asmtpd's
 * network-facts process share it.
 */
export function readLines(
  input: NodeJS.ReadableStream, handlers: { onLine(line: string): void; onFatal(err: Error): void; onEnd(): void }, maxLineBytes?: number,
): void {
  const splitter = new LineSplitter(maxLineBytes);
  input.setEncoding('utf8');
  input.on('data', (chunk: string) => {
    let lines: string[];
    try {
      lines = splitter.push(chunk);
    } catch (err) {
      handlers.onFatal(err as Error);
      return;
    }
    for (const line of lines) handlers.onLine(line);
  });
  input.on('end', () => handlers.onEnd());
}

/** Splits incoming chunks into complete lines (without the '\n'). */
export class LineSplitter {
  private partial = '';

  constructor(private readonly maxLineBytes = 16 * 1024 * 1024) {}

  /** Returns the complete lines in chunk; throws if a line grows beyond maxLineBytes. */
  push(chunk: string): string[] {
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    if (this.partial.length > this.maxLineBytes) throw new Error('line too long');
    return lines;
  }
}
