/*
 * protocol — the runner's settings, request and result types, and their wire form.
 *
 * SUMMARY
 *   Settings come once, from root, on the runner's command line (--settings=JSON): where system
 *   scripts live, who AvengerUser is, the accounts file, the spool directory of body tests, the
 *   uids that never run anything, the variable names requests may set, and the scripts' limits.
 *   The daemon and the runner then speak JSON lines over the runner's stdin/stdout:
 *     runner → daemon, once at start:  {"kind":"ready","version":2,"pid":N,"privileged":true,"uid":0}
 *     daemon → runner, per request:    {"id":7, ...RunRequest}
 *     runner → daemon, per result:     {"id":7,"result":RunResult}
 *   Requests are independent and may be in flight concurrently; results come back in
 *   completion order, matched by id. Anything the runner wants to say otherwise goes to stderr.
 *
 *   A request names WHAT to run, never as whom or where: an rcpt request names an account (or
 *   the system scripts) and the file names to try; a body-test request names a token the runner
 *   issued with the rcpt decision that asked for the test, and a file name in the spool
 *   directory. The runner resolves uid, gid, groups, home and the script directory itself.
 *
 * PUBLIC
 *   RunRequest (RcptRequest | BodyTestRequest), RunResult, ScriptDecision, DecisionVerb, ReadyMessage,
 *   ResultMessage, RunnerSettings, ScriptLimits, DEFAULT_LIMITS
 *   validateRequest(value), validateSettings(value) — strict checks on untrusted-in-form input
 *   isValidCandidateName(name), isValidSpoolName(name)
 *   SAFE_PATH, MAX_OUTPUT_BYTES, PROTOCOL_VERSION, readLines, LineSplitter
 *
 * SECURITY
 *   The runner trusts nothing on the pipe: every field is checked for type and range, a field it
 *   does not know makes the request a bad one, and no field ever reaches shell text (values
 *   travel as environment variables and argv elements only).
 */

export const PROTOCOL_VERSION = 2;

/** The PATH every child gets, whatever the request says. */
export const SAFE_PATH = '/usr/local/bin:/usr/bin:/bin';

/** Bytes of stdout, of stderr and of the decision channel kept per child; the rest is read and dropped. */
export const MAX_OUTPUT_BYTES = 64 * 1024;

export type DecisionVerb = 'accept' | 'reject' | 'defer' | 'redirect' | 'bodytest';

export interface ScriptDecision {
  verb: DecisionVerb;
  /** accept/reject/defer: [] or [text]; redirect: [address]; bodytest: [command, ...args]. */
  args: string[];
}

/** Resource limits of every script and body test (setrlimit in the child, before exec). */
export interface ScriptLimits {
  /** RLIMIT_NPROC of the target user (all its processes), 0 = none */
  processes: number;
  /** RLIMIT_CPU, seconds of CPU per process */
  cpuSeconds: number;
  /** RLIMIT_DATA, bytes of heap and private writable memory per process */
  dataBytes: number;
  /** RLIMIT_FSIZE, largest file a process may write */
  fileBytes: number;
  /** RLIMIT_NOFILE, open descriptors per process */
  openFiles: number;
}

export const DEFAULT_LIMITS: ScriptLimits = {
  processes: 512,
  cpuSeconds: 60,
  dataBytes: 1024 ** 3,
  fileBytes: 512 * 1024 ** 2,
  openFiles: 1024,
};

/** What root tells the runner at start; nothing on the pipe can change it. */
export interface RunnerSettings {
  /** system scripts (unknown, relay, default), run as AvengerUser */
  etcDir: string;
  avengerUser: string;
  /** passwd(5)-format accounts used instead of the system database (AvengerUser: falls back to it) */
  passwdFile: string | null;
  /** where body tests' message files are; opened once at start */
  spoolDir: string | null;
  /** the SMTP process's uid: never runs anything, owns the spool files (null: not root, no checks) */
  daemonUid: number | null;
  /** further uids that never run anything (the network-facts process) */
  deniedUids: number[];
  /** variable names a request may set; others are dropped */
  envNames: string[];
  /** variables set by the runner for every child (the helpers' node and script paths) */
  fixedEnv: Record<string, string>;
  /**
   * the scripts' utilities (dbutil, deliver, …: docs/utilities.md), first on every child's PATH;
   * as root the runner starts only if it and the path to it are root's alone
   */
  toolsDir: string | null;
  limits: ScriptLimits;
}

/** Find the first existing candidate in the script directory, check it, run it with the prelude. */
export interface RcptRequest {
  /** Set by the client; echoed in the result message. */
  id?: number;
  kind: 'rcpt';
  /** 'user': ~ACCOUNT/.avenger, run as ACCOUNT (uid 0: as AvengerUser); 'system': EtcDir as AvengerUser */
  scope: 'user' | 'system';
  /** the account whose policy this is (scope 'user' only) */
  account?: string;
  /** File names in lookup order: 'rcpt…' for a user, 'unknown', 'relay' or 'default' for the system. */
  candidates: string[];
  /**
   * Extra variables for the candidate that is found, by file name, added over env: e.g.
   * {'rcpt+a+default': {DEFAULT: 'b'}}, since only the runner knows which one runs.
   */
  candidateEnv?: Record<string, Record<string, string>>;
  /** the facts, as variables (names from the settings' envNames; USER, HOME… are the runner's) */
  env: Record<string, string>;
  /** The whole process group is killed with SIGKILL after this long. */
  timeoutMs: number;
}

/** Run the body test an rcpt decision asked for, with a spool file on stdin. */
export interface BodyTestRequest {
  id?: number;
  kind: 'bodytest';
  /** the token of the `ran` result whose decision was bodytest */
  token: string;
  /** a file name (no directory) in the spool directory: the message, given as a seekable stdin */
  spool: string;
  timeoutMs: number;
}

/** Fetch the settings again from where the runner got them at start (not from the pipe). */
export interface ReloadRequest {
  id?: number;
  kind: 'reload';
}

export type RunRequest = RcptRequest | BodyTestRequest | ReloadRequest;

export type RunResult =
  /** No candidate file exists (or the directory does not). */
  | { kind: 'none'; tried: string[] }
  /** A safety check failed; nothing ran. script is null when the request itself was refused. */
  | { kind: 'refused'; tried: string[]; script: string | null; reason: string }
  /** A child ran (for a body test, tried is [] and script absent). */
  | {
      kind: 'ran';
      tried: string[];
      script?: string;
      /** The first decision the script wrote, or null (no decision, or an unreadable one). */
      decision: ScriptDecision | null;
      /** Set when the decision channel held something that is not a valid decision. */
      decisionError: string | null;
      /** with a bodytest decision: what a BodyTestRequest names to run it */
      bodyTest?: string;
      exitCode: number | null;
      signal: string | null;
      timedOut: boolean;
      stdout: string;
      stderr: string;
      /** True if stdout or stderr was longer than MAX_OUTPUT_BYTES and was cut. */
      outputTruncated: boolean;
      durationMs: number;
      /** The account and uid the child actually ran as (the invoking user's when the runner is not root). */
      user: string;
      uid: number;
    }
  /** A reload was done: the settings that changed, and those that need a restart (kept as they were). */
  | { kind: 'reloaded'; changes: string[]; needRestart: string[] }
  /** The runner could not do what was asked (bad request, spawn failure, runner gone). */
  | { kind: 'error'; reason: string };

export interface ReadyMessage {
  kind: 'ready';
  version: number;
  pid: number;
  /** True when running as root: children switch to the accounts the runner resolves. */
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
  return name.length > 0 && name.length <= 255 && !name.includes('/') && !name.includes('\0') && !name.startsWith('.');
}

/** A user's policy file: rcpt, or rcpt followed by a separator and the extension. */
const USER_CANDIDATE = /^rcpt(?:[^A-Za-z0-9][^/\0]*)?$/;
export const SYSTEM_SCRIPTS = ['unknown', 'relay', 'default'] as const;

/** A spool file name: letters, digits, '.', '_' and '-', not starting with '.'. */
export function isValidSpoolName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name);
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_ID = 0xfffffffe;
const MAX_TIMEOUT_MS = 86_400_000;

function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_ID;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isAbsolutePath(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith('/') && !value.includes('\0');
}

/** Why env is not a map of variable names to strings, or null. Values are cleaned later, not refused. */
function envProblem(env: unknown, what: string): string | null {
  if (!isObject(env)) return what;
  for (const [name, val] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) return `${what} name ${JSON.stringify(name.slice(0, 64))}`;
    if (typeof val !== 'string') return `${what} value of ${name}`;
  }
  return null;
}

function unknownField(r: Record<string, unknown>, allowed: readonly string[]): string | null {
  return Object.keys(r).find((k) => !allowed.includes(k)) ?? null;
}

function isTimeout(value: unknown): boolean {
  return typeof value === 'number' && value > 0 && value <= MAX_TIMEOUT_MS;
}

const RCPT_FIELDS = ['id', 'kind', 'scope', 'account', 'candidates', 'candidateEnv', 'env', 'timeoutMs'] as const;
const BODYTEST_FIELDS = ['id', 'kind', 'token', 'spool', 'timeoutMs'] as const;

/** Check a parsed request; returns the typed request or the first problem found. */
export function validateRequest(value: unknown): { ok: true; request: RunRequest } | { ok: false; reason: string } {
  const fail = (reason: string) => ({ ok: false as const, reason: `bad request: ${reason}` });
  if (!isObject(value)) return fail('not an object');
  const r = value;
  if (r.id !== undefined && !isId(r.id)) return fail('id');
  if (r.kind === 'reload') {
    const extra = unknownField(r, ['id', 'kind']);
    return extra === null
      ? { ok: true, request: value as unknown as ReloadRequest }
      : fail(`unknown field ${JSON.stringify(extra.slice(0, 64))}`);
  }
  if (r.kind === 'bodytest') {
    const extra = unknownField(r, BODYTEST_FIELDS);
    if (extra !== null) return fail(`unknown field ${JSON.stringify(extra.slice(0, 64))}`);
    if (typeof r.token !== 'string' || !/^[0-9a-f]{32}$/.test(r.token)) return fail('token');
    if (typeof r.spool !== 'string' || !isValidSpoolName(r.spool)) return fail('spool must be a file name');
    if (!isTimeout(r.timeoutMs)) return fail('timeoutMs');
    return { ok: true, request: value as unknown as BodyTestRequest };
  }
  if (r.kind !== 'rcpt') return fail('kind must be "rcpt", "bodytest" or "reload"');
  const extra = unknownField(r, RCPT_FIELDS);
  if (extra !== null) return fail(`unknown field ${JSON.stringify(extra.slice(0, 64))}`);
  if (r.scope !== 'user' && r.scope !== 'system') return fail('scope must be "user" or "system"');
  if (r.scope === 'user' && (typeof r.account !== 'string' || r.account === '' || r.account.length > 256))
    return fail('account');
  if (r.scope === 'system' && r.account !== undefined) return fail('account is for scope "user" only');
  if (!Array.isArray(r.candidates) || r.candidates.length === 0 || r.candidates.length > 64) return fail('candidates');
  const fits =
    r.scope === 'user'
      ? (c: unknown) => typeof c === 'string' && isValidCandidateName(c) && USER_CANDIDATE.test(c)
      : (c: unknown) => typeof c === 'string' && (SYSTEM_SCRIPTS as readonly string[]).includes(c);
  if (!r.candidates.every(fits))
    return fail(
      r.scope === 'user' ? 'candidates must be rcpt file names' : 'candidates must be unknown, relay or default',
    );
  const badEnv = envProblem(r.env, 'env');
  if (badEnv !== null) return fail(badEnv);
  if (r.candidateEnv !== undefined) {
    if (!isObject(r.candidateEnv)) return fail('candidateEnv');
    for (const [name, env] of Object.entries(r.candidateEnv)) {
      const bad = envProblem(env, `candidateEnv[${JSON.stringify(name.slice(0, 64))}]`);
      if (bad !== null) return fail(bad);
    }
  }
  if (!isTimeout(r.timeoutMs)) return fail('timeoutMs');
  return { ok: true, request: value as unknown as RcptRequest };
}

const SETTINGS_FIELDS = [
  'etcDir',
  'avengerUser',
  'passwdFile',
  'spoolDir',
  'daemonUid',
  'deniedUids',
  'envNames',
  'fixedEnv',
  'toolsDir',
  'limits',
] as const;

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= Number.MAX_SAFE_INTEGER;
}

/** Check the settings given at start; a problem is fatal (the runner does not start). */
export function validateSettings(
  value: unknown,
): { ok: true; settings: RunnerSettings } | { ok: false; reason: string } {
  const fail = (reason: string) => ({ ok: false as const, reason: `bad settings: ${reason}` });
  if (!isObject(value)) return fail('not an object');
  const s = value;
  const extra = unknownField(s, SETTINGS_FIELDS);
  if (extra !== null) return fail(`unknown field ${extra}`);
  if (!isAbsolutePath(s.etcDir)) return fail('etcDir');
  if (typeof s.avengerUser !== 'string' || s.avengerUser === '') return fail('avengerUser');
  if (s.passwdFile !== null && !isAbsolutePath(s.passwdFile)) return fail('passwdFile');
  if (s.spoolDir !== null && !isAbsolutePath(s.spoolDir)) return fail('spoolDir');
  if (s.daemonUid !== null && !isId(s.daemonUid)) return fail('daemonUid');
  if (!Array.isArray(s.deniedUids) || !s.deniedUids.every(isId)) return fail('deniedUids');
  if (!Array.isArray(s.envNames) || !s.envNames.every((n) => typeof n === 'string' && ENV_NAME.test(n)))
    return fail('envNames');
  if (envProblem(s.fixedEnv, 'fixedEnv') !== null) return fail('fixedEnv');
  if (s.toolsDir !== null && (!isAbsolutePath(s.toolsDir) || s.toolsDir.includes(':'))) return fail('toolsDir');
  const l = s.limits;
  if (!isObject(l) || !['processes', 'cpuSeconds', 'dataBytes', 'fileBytes', 'openFiles'].every((k) => isCount(l[k])))
    return fail('limits');
  return { ok: true, settings: value as unknown as RunnerSettings };
}

/**
 * Reads a child process's stdin as lines: onLine for each complete line, onFatal when a line grows
 * beyond maxLineBytes (the peer is broken), onEnd at end of input. The runner and asmtpd's
 * network-facts process share it.
 */
export function readLines(
  input: NodeJS.ReadableStream,
  handlers: { onLine(line: string): void; onFatal(err: Error): void; onEnd(): void },
  maxLineBytes?: number,
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
