/*
 * client — start the runner process and talk to it.
 *
 * SUMMARY
 *   startRunner({settings}) spawns `node dist/main.js --settings=JSON` (as whoever calls it: the
 *   daemon calls it while still root, then drops root) and resolves once the runner said it is
 *   ready. run() sends one request and resolves with its result; any number may be in flight,
 *   matched by id.
 *
 *   If the runner dies, every pending request resolves to {kind:'error'} and so does every later
 *   run(): the client does NOT restart it, because a daemon that has dropped root could only
 *   start an unprivileged runner, which would quietly run every script as the daemon's account.
 *   onExit tells the owner, who decides (the daemon should stop and be restarted as root).
 *
 * PUBLIC
 *   startRunner(options?) → Promise<RunnerClient>
 *   RunnerClient: run(request), close(), pid, privileged, alive
 *   runnerMainPath — absolute path of dist/main.js
 *
 * SECURITY
 *   The runner inherits nothing but its three stdio pipes and an environment of PATH only
 *   (NODE_OPTIONS and the like of the caller do not reach a root process). As root it starts
 *   through setpriv(1) with a bounding set of RUNNER_CAPABILITIES and no inheritable
 *   capabilities. Its settings are fixed for its lifetime.
 */
import { existsSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  LineSplitter,
  SAFE_PATH,
  type ReadyMessage,
  type ResultMessage,
  type RunnerSettings,
  type RunRequest,
  type RunResult,
} from './protocol.js';

export const runnerMainPath = fileURLToPath(new URL('./main.js', import.meta.url));

export interface StartRunnerOptions {
  /**
   * what the runner runs, for whom, with which limits: on its command line, fixed for its
   * lifetime (dist/main.js); or `entry`, a program of the caller's that finds its settings itself
   * (asmtpd's reads the configuration file, and re-reads it on reload())
   */
  settings?: RunnerSettings;
  entry?: { main: string; args: string[] };
  /** Node binary (default: this process's). */
  nodePath?: string;
  /** Each line the runner writes to stderr (default: copied to this process's stderr). */
  onLog?: (line: string) => void;
  /** Called once when the runner process ends, expectedly (close) or not. */
  onExit?: (code: number | null, signal: string | null, expected: boolean) => void;
  /** How long to wait for the ready line (default 10 s). */
  startTimeoutMs?: number;
}

export interface RunnerClient {
  run(request: RunRequest): Promise<RunResult>;
  /** ask the runner to fetch its settings again from its own source */
  reload(): Promise<RunResult>;
  /** Waits for pending requests, then ends the runner's stdin and waits for it to exit. */
  close(): Promise<void>;
  readonly pid: number;
  /** The runner is root and switches to the requested users. */
  readonly privileged: boolean;
  readonly alive: boolean;
}

class RunnerConnection implements RunnerClient {
  private nextId = 1;
  private readonly pending = new Map<number, (result: RunResult) => void>();
  private exitReason: string | null = null;
  private closing = false;
  private readonly exited: Promise<void>;
  private drainWaiters: Array<() => void> = [];
  pid: number;
  privileged = false;

  constructor(
    private readonly child: ChildProcess,
    options: StartRunnerOptions,
  ) {
    this.pid = child.pid ?? -1;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitReason = `runner exited (${signal ?? `code ${code}`})`;
        for (const resolvePending of this.pending.values()) resolvePending({ kind: 'error', reason: this.exitReason });
        this.pending.clear();
        this.notifyIfDrained();
        options.onExit?.(code, signal, this.closing);
        resolve();
      });
    });
    child.stdin?.on('error', () => {
      /* EPIPE when the runner is gone: reported through 'exit' */
    });
  }

  get alive(): boolean {
    return this.exitReason === null;
  }

  handleResult(message: ResultMessage): void {
    if (message.id === null) return;
    const resolve = this.pending.get(message.id);
    if (resolve === undefined) return;
    this.pending.delete(message.id);
    resolve(message.result);
    this.notifyIfDrained();
  }

  private notifyIfDrained(): void {
    if (this.pending.size > 0) return;
    for (const wake of this.drainWaiters.splice(0)) wake();
  }

  run(request: RunRequest): Promise<RunResult> {
    if (this.exitReason !== null)
      return Promise.resolve({ kind: 'error', reason: `${this.exitReason}; not restarted` });
    if (this.closing) return Promise.resolve({ kind: 'error', reason: 'runner is closing' });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.stdin?.write(`${JSON.stringify({ ...request, id })}\n`);
    });
  }

  reload(): Promise<RunResult> {
    return this.run({ kind: 'reload' });
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.pending.size > 0) await new Promise<void>((wake) => this.drainWaiters.push(wake));
    this.child.stdin?.end();
    await this.exited;
  }
}

const SETPRIV = '/usr/bin/setpriv';

/** The capabilities the runner keeps when started as root. */
export const RUNNER_CAPABILITIES = ['setuid', 'setgid', 'kill', 'dac_read_search'] as const;

export function startRunner(options: StartRunnerOptions): Promise<RunnerClient> {
  const args = options.entry
    ? [options.entry.main, ...options.entry.args]
    : [runnerMainPath, `--settings=${JSON.stringify(options.settings ?? null)}`];
  const node = options.nodePath ?? process.execPath;
  // as root, keep only the powers the runner uses: become users (setuid, setgid), signal their
  // process groups (kill), read spool files of the SMTP process (dac_read_search); setpriv
  // (util-linux) empties the capability bounding set but for them, and the inheritable set
  const viaSetpriv = process.getuid?.() === 0 && existsSync(SETPRIV);
  const [cmd, argv] = viaSetpriv
    ? [
        SETPRIV,
        [
          '--bounding-set',
          `-all,${RUNNER_CAPABILITIES.map((c) => `+${c}`).join(',')}`,
          '--inh-caps',
          '-all',
          '--',
          node,
          ...args,
        ],
      ]
    : [node, args];
  const child = spawn(cmd, argv, {
    stdio: ['pipe', 'pipe', 'pipe'],
    // capability-guard.ts: the runner refuses to run with more than these (setpriv without CAP_SETPCAP)
    env: { PATH: SAFE_PATH, ...(viaSetpriv ? { ASMTPD_CAPABILITIES: RUNNER_CAPABILITIES.join(',') } : {}) },
  });
  const connection = new RunnerConnection(child, options);
  const onLog = options.onLog ?? ((line: string) => process.stderr.write(`${line}\n`));

  const errLines = new LineSplitter();
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => errLines.push(chunk).forEach(onLog));

  return new Promise((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('avenger-runner did not start in time'));
    }, options.startTimeoutMs ?? 10_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start avenger-runner: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`avenger-runner exited before it was ready (${signal ?? `code ${code}`})`));
    });
    const outLines = new LineSplitter();
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      for (const line of outLines.push(chunk)) {
        let message: ResultMessage | ReadyMessage;
        try {
          message = JSON.parse(line) as ResultMessage | ReadyMessage;
        } catch {
          onLog(`avenger-runner: unparsable line on stdout: ${line.slice(0, 200)}`);
          continue;
        }
        if ('kind' in message && message.kind === 'ready') {
          ready = true;
          clearTimeout(timer);
          connection.pid = message.pid;
          connection.privileged = message.privileged;
          resolve(connection);
        } else if ('result' in message) {
          connection.handleResult(message);
        }
      }
    });
  });
}
