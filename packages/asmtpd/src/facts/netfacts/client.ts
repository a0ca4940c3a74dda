/**
 * client.ts — the daemon's side of the network facts process (process.ts, protocol.ts): start it,
 * keep the SYNs it sends, and serve CLIENT_SYNFP / CLIENT_SYNOS / CLIENT_NETHOPS / CLIENT_NETPATH
 * to the sessions (NetFactSource, facts/client-facts.ts).
 *
 *   startNetFacts({ports, capture, log, account}) -> Promise<NetFactsClient>
 *       spawns `node dist/facts/netfacts/process.js`: as root (the daemon, before it drops privileges)
 *       through setpriv as `account` (NetFactsUser) with the ambient capability CAP_NET_RAW and
 *       nothing else; otherwise as the caller. Resolves once the process said it is ready
 *   client.source(config) -> NetFactSource | null        per configuration (re)load: reads SynFPDB
 *       once, turns capture on or off as SynFP says; null when neither SynFP nor NetPath is on
 *   client.close()          ends the process (its stdin); resolves when it has exited
 *   openNetFacts(config, log) -> Promise<NetFactsClient | null>      what the daemon calls: null
 *       when SynFP and NetPath are off, or without CAP_NET_RAW, or when the process cannot start —
 *       each said in one log line (netfacts.off; warn when SynFP yes / NetPath yes asked for it)
 *   synFact(syn, db) -> SynFact                          fingerprint, OS guess, distance
 *   synFpDbFiles(config), loadSynFpDb(paths, log)       SynFPDB's files (default: the shipped pair), read as one
 *
 * syn(ip, port): the SYN of that connection from the table (syn-table.ts), waiting up to
 * SYN_WAIT_MS for it; null when capture is off or the SYN was not seen. route(ip): a trace by the
 * process, bounded by DNSTimeout (+1 s for the pipe); null on failure.
 * If the process dies, that is logged once (netfacts.exit) and every fact from it is null from
 * then on: the daemon keeps serving, without SYN fingerprints or routes. It is not restarted (the
 * daemon is no longer root; see the avenger runner for the same reasoning).
 */
import { existsSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../config/types.js';
import type { Logger } from '../../log/logger.js';
import type { NetFactSource, RouteFact, SynFact } from '../client-facts.js';
import { formatFingerprint, hopsFromTtl } from '../synfp/fingerprint.js';
import {
  DEFAULT_SYNFP_DBS,
  concatPfos,
  describeMatch,
  matchFingerprint,
  readPfosFile,
  type PfosDb,
} from '../synfp/pfos.js';
import type { SynInfo } from '../synfp/syn-packet.js';
import { isSynInfo, LineSplitter, type CaptureState, type ProcessMessage } from './protocol.js';
import { SynTable } from './syn-table.js';
import { CAP_NET_RAW, hasCapability } from './capability.js';
import type { Account } from '../../recipients/accounts.js';

export const netFactsMainPath: string = fileURLToPath(new URL('./process.js', import.meta.url));
/** how long syn() waits for a SYN that has not come through yet (it is asked for at connect, so this
 *  delays nothing unless the SYN was missed; generous for a loaded machine) */
export const SYN_WAIT_MS = 500;
const SAFE_PATH = '/usr/local/bin:/usr/bin:/bin';
/** SynFPDB lines reported one by one; the rest are counted */
const MAX_DB_ERRORS_LOGGED = 10;

export interface NetFactsOptions {
  /** the daemon's listening ports (SYNs to these are captured) */
  ports: number[];
  /** as root: the account it runs as (NetFactsUser), with CAP_NET_RAW only */
  account?: Account;
  /** capture from the start (SynFP on) */
  capture: boolean;
  log: Logger;
  nodePath?: string;
  startTimeoutMs?: number;
  synWaitMs?: number;
}

export interface NetFactsClient {
  readonly pid: number;
  readonly alive: boolean;
  /** 'on', 'off', or why capture is not running */
  readonly captureState: CaptureState;
  /** the process holds CAP_NET_RAW */
  readonly netRaw: boolean;
  source(config: Config): NetFactSource | null;
  close(): Promise<void>;
}

/** What CLIENT_SYNFP, CLIENT_SYNOS and the TTL's share of CLIENT_NETHOPS say about one SYN. */
export function synFact(syn: SynInfo, db: PfosDb | null): SynFact {
  const match = db ? matchFingerprint(db, syn) : null;
  return {
    fp: formatFingerprint(syn),
    os: match ? describeMatch(match) : null,
    hops: match?.distance ?? hopsFromTtl(syn.ttl),
  };
}

/** The files SynFPDB names, or the shipped pair when it names none. */
export function synFpDbFiles(config: Pick<Config, 'synFpDb'>): readonly string[] {
  return config.synFpDb.length > 0 ? config.synFpDb : DEFAULT_SYNFP_DBS;
}

/**
 * Read SynFPDB's files as one database (in order); bad lines are logged (and skipped), an
 * unreadable file is logged and left out; null (no OS guesses) when none could be read.
 */
export function loadSynFpDb(paths: readonly string[], log: Logger): PfosDb | null {
  const dbs: PfosDb[] = [];
  for (const file of paths) {
    try {
      dbs.push(readPfosFile(file));
    } catch (err) {
      log.warn('synfp.db_error', {
        file,
        error: (err as Error).message,
        note: 'this file gives no OS guesses (CLIENT_SYNOS) until it can be read',
      });
    }
  }
  if (dbs.length === 0) return null;
  const db = concatPfos(dbs);
  db.errors
    .slice(0, MAX_DB_ERRORS_LOGGED)
    .forEach((e) => log.warn('synfp.db_error', { file: e.file, line: e.line, error: e.message }));
  if (db.errors.length > MAX_DB_ERRORS_LOGGED) {
    log.warn('synfp.db_error', {
      file: paths.join(' '),
      error: `${db.errors.length - MAX_DB_ERRORS_LOGGED} more bad lines`,
      skipped: db.errors.length,
    });
  }
  return db;
}

class Connection implements NetFactsClient {
  pid: number;
  netRaw = false;
  captureState: CaptureState = 'off';
  private exitReason: string | null = null;
  private closing = false;
  private nextId = 1;
  private readonly pending = new Map<number, (r: RouteFact | null) => void>();
  private readonly syns = new SynTable();
  private readonly exited: Promise<void>;
  private wantCapture: boolean;

  constructor(
    private readonly child: ChildProcess,
    private readonly o: NetFactsOptions,
  ) {
    this.pid = child.pid ?? -1;
    this.wantCapture = o.capture;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitReason = signal ?? `code ${code}`;
        for (const done of this.pending.values()) done(null);
        this.pending.clear();
        this.syns.clear();
        if (!this.closing)
          o.log.error('netfacts.exit', {
            pid: this.pid,
            code,
            signal,
            note: 'SYN fingerprints and routes are off until the daemon is restarted',
          });
        resolve();
      });
    });
    child.stdin?.on('error', () => {
      /* EPIPE when the process is gone: reported through 'exit' */
    });
  }

  get alive(): boolean {
    return this.exitReason === null && !this.closing;
  }

  handle(message: ProcessMessage): void {
    switch (message.kind) {
      case 'syn':
        if (isSynInfo(message.syn)) this.syns.add(message.syn);
        return;
      case 'capture':
        if (message.capture !== this.captureState) {
          const level = message.capture === 'on' || message.capture === 'off' ? 'info' : 'warn';
          this.o.log.log(level, 'netfacts.capture', { capture: message.capture });
        }
        this.captureState = message.capture;
        if (this.captureState !== 'on') this.syns.clear();
        return;
      case 'result': {
        if (message.id === null) {
          if ('error' in message) this.o.log.warn('netfacts.log', { line: `refused request: ${message.error}` });
          return;
        }
        const done = this.pending.get(message.id);
        if (!done) return;
        this.pending.delete(message.id);
        done('route' in message ? message.route : null);
        return;
      }
      default:
        return;
    }
  }

  private request(body: Record<string, unknown>): void {
    this.child.stdin?.write(`${JSON.stringify(body)}\n`);
  }

  private setCapture(on: boolean): void {
    if (on === this.wantCapture || !this.alive) return;
    this.wantCapture = on;
    this.request({ op: 'capture', on });
  }

  private route(ip: string, maxHops: number, timeoutMs: number): Promise<RouteFact | null> {
    if (!this.alive) return Promise.resolve(null);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(null);
      }, timeoutMs + 1000);
      this.pending.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.request({ id, op: 'route', ip, maxHops, timeoutMs });
    });
  }

  source(config: Config): NetFactSource | null {
    const synOn = config.synFp !== false;
    this.setCapture(synOn);
    if (!synOn && !config.netPath) return null;
    const db = synOn ? loadSynFpDb(synFpDbFiles(config), this.o.log) : null;
    const waitMs = this.o.synWaitMs ?? SYN_WAIT_MS;
    const maxHops = config.netPathMaxHops;
    const timeoutMs = Math.min(60_000, Math.max(100, config.dnsTimeoutMs));
    return {
      syn: async (ip, port) => {
        if (!synOn || !this.alive || this.captureState !== 'on') return null;
        const syn = await this.syns.take(ip, port, waitMs);
        return syn ? synFact(syn, db) : null;
      },
      route: config.netPath ? (ip) => this.route(ip, maxHops, timeoutMs) : null,
    };
  }

  async close(): Promise<void> {
    if (this.closing) return this.exited;
    this.closing = true;
    this.child.stdin?.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await this.exited;
    clearTimeout(timer);
  }
}

const SETPRIV = '/usr/bin/setpriv';

/**
 * As root: become the account and keep CAP_NET_RAW alone, as an ambient capability (so that it
 * survives the exec of node and of the capture helper), with an empty bounding set but for it,
 * no_new_privs, and only the account's own group. Not root: run as we are.
 */
function launcher(account: Account | undefined): string[] {
  if (process.getuid?.() !== 0) return [];
  if (!account) throw new Error('the network facts process needs NetFactsUser when started as root');
  if (!existsSync(SETPRIV))
    throw new Error(`${SETPRIV} is missing: cannot start the network facts process without root`);
  return [
    SETPRIV,
    `--reuid=${account.uid}`,
    `--regid=${account.gid}`,
    '--clear-groups',
    '--inh-caps=-all,+net_raw',
    '--ambient-caps=-all,+net_raw',
    '--bounding-set=-all,+net_raw',
    '--no-new-privs',
    '--',
  ];
}

export function startNetFacts(o: NetFactsOptions): Promise<NetFactsClient> {
  const args = [netFactsMainPath, `--ports=${[...new Set(o.ports)].join(',')}`, ...(o.capture ? ['--capture'] : [])];
  const node = o.nodePath ?? process.execPath;
  let prefix: string[];
  try {
    prefix = launcher(o.account);
  } catch (err) {
    return Promise.reject(err);
  }
  const [cmd, ...argv] = [...prefix, node, ...args] as [string, ...string[]];
  // capability-guard: through setpriv, the process refuses to run with more than CAP_NET_RAW
  const env = { PATH: SAFE_PATH, ...(prefix.length > 0 ? { ASMTPD_CAPABILITIES: 'net_raw' } : {}) };
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], env, cwd: '/' });
  const connection = new Connection(child, o);
  const errLines = new LineSplitter();
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    let lines: string[];
    try {
      lines = errLines.push(chunk);
    } catch {
      return;
    }
    for (const line of lines) if (line.trim() !== '') o.log.warn('netfacts.log', { line });
  });
  return new Promise((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the network facts process did not start in time'));
    }, o.startTimeoutMs ?? 15_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`cannot start the network facts process: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (!ready)
        reject(new Error(`the network facts process exited before it was ready (${signal ?? `code ${code}`})`));
    });
    const outLines = new LineSplitter();
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      let lines: string[];
      try {
        lines = outLines.push(chunk);
      } catch (err) {
        o.log.error('netfacts.log', { line: `protocol error: ${(err as Error).message}` });
        child.kill('SIGKILL');
        return;
      }
      for (const line of lines) {
        let message: ProcessMessage;
        try {
          message = JSON.parse(line) as ProcessMessage;
        } catch {
          o.log.warn('netfacts.log', { line: `unparsable line on stdout: ${line.slice(0, 200)}` });
          continue;
        }
        if (message.kind === 'ready') {
          if (ready) continue;
          ready = true;
          clearTimeout(timer);
          connection.pid = message.pid;
          connection.netRaw = message.netRaw;
          connection.captureState = message.capture;
          resolve(connection);
        } else {
          connection.handle(message);
        }
      }
    });
  });
}

/**
 * The daemon's network facts at start (as root, before dropping privileges). SynFP's default
 * (null) means "on when we can": without CAP_NET_RAW that is an info line, with `SynFP yes` or
 * `NetPath yes` a warning. Started, it logs netfacts.start (pid, capture state).
 */
export async function openNetFacts(
  config: Config,
  log: Logger,
  o: { netRaw?: boolean; account?: Account; start?: (options: NetFactsOptions) => Promise<NetFactsClient> } = {},
): Promise<NetFactsClient | null> {
  const synOn = config.synFp !== false;
  if (!synOn && !config.netPath) return null;
  const asked = config.synFp === true || config.netPath;
  const settings = { syn_fp: config.synFp === null ? 'auto' : config.synFp, net_path: config.netPath };
  if (!(o.netRaw ?? hasCapability(CAP_NET_RAW))) {
    log.log(asked ? 'warn' : 'info', 'netfacts.off', {
      ...settings,
      reason:
        'no CAP_NET_RAW: CLIENT_SYNFP, CLIENT_SYNOS and CLIENT_NETHOPS/CLIENT_NETPATH are not gathered (start asmtpd as root)',
    });
    return null;
  }
  let client: NetFactsClient;
  try {
    client = await (o.start ?? startNetFacts)({
      ports: [config.smtpPort],
      capture: synOn,
      log,
      ...(o.account ? { account: o.account } : {}),
    });
  } catch (err) {
    log.log(asked ? 'warn' : 'info', 'netfacts.off', { ...settings, reason: (err as Error).message });
    return null;
  }
  const captureFailed = synOn && client.captureState !== 'on';
  log.log(captureFailed && asked ? 'warn' : 'info', 'netfacts.start', {
    pid: client.pid,
    ...settings,
    capture: client.captureState,
    ports: [config.smtpPort],
    ...(captureFailed ? { note: 'SYN fingerprints are off' } : {}),
  });
  return client;
}
