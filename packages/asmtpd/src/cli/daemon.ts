/**
 * daemon.ts — `asmtpd [-d] [--verbose] [-f FILE]`: load the configuration, listen, serve.
 *
 * Without -d the daemon detaches: it re-runs itself with -d --detached in the background, its log
 * appended to DBDir/asmtpd.log (opened here, daemon/state-dirs.ts), and the command returns once
 * the child says it serves (a line on its fd 3, written after `daemon.start`): 0 then, 1 if the
 * child exits first or is not serving within 60 s (it is stopped then). The detached daemon writes
 * DBDir/asmtpd.pid first and removes it however it stops (a signal while starting included).
 * Signals: SIGHUP re-reads the configuration (a broken file is refused and logged, the running one
 * stays; listening addresses, accounts, DBDir and the script limits need a restart);
 * SIGTERM/SIGINT stop accepting, let sessions in DATA finish (30 s at most), then exit 0.
 * Started as root (docs/security.md): it checks (or creates) its accounts, takes over DBDir,
 * starts the script runner (root, to become users) and, for SynFP/NetPath, the network facts
 * process (NetFactsUser with CAP_NET_RAW), listens (SMTP, and MetricsListen's Prometheus endpoint:
 * daemon/metrics-listener.ts), and becomes DaemonUser for good.
 */
import cluster from 'node:cluster';
import { closeSync, fstatSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { formatIssue, type ConfigIssue } from '../config/load.js';
import type { Config } from '../config/types.js';
import { createLogger, type Logger } from '../log/logger.js';
import { metrics } from '../metrics/metrics.js';
import { startMetricsListener, type MetricsListener } from '../daemon/metrics-listener.js';
import type { Relay } from '../relay/types.js';
import type { NetFactSource } from '../facts/client-facts.js';
import { startWorkers, type Workers } from '../daemon/primary.js';
import { linkToPrimary } from '../daemon/worker-link.js';
import { createSmtpSide, type SmtpSide } from './smtp-side.js';
import { dropPrivileges, type PrivilegeResult } from '../daemon/privileges.js';
import { serviceAccounts, type ServiceAccounts } from '../daemon/service-accounts.js';
import { openLogFile, prepareStateDirectories, removePidFile, writePidFile, LOG_FILE } from '../daemon/state-dirs.js';
import { runnerIds } from '../daemon/runner-settings.js';
import { runnerProcessPath } from '../daemon/runner-entry.js';
import { tuneHeapForServer } from '../daemon/heap.js';
import { startRunner, type RunnerClient, type RunRequest, type RunResult } from '@asmtpd/avenger-runner';
import { openNetFacts } from '../facts/netfacts/client.js';
import { loadForCommand } from '../config/source.js';
import { VERSION } from '../version.js';
import { unreadableBy } from '../daemon/tls-readable.js';

export interface DaemonArgs {
  file: string;
  fileGiven: boolean;
  foreground: boolean;
  verbose: boolean;
  /** started by a detaching `asmtpd` (internal): writes and removes DBDir/asmtpd.pid */
  detached?: boolean;
}

const STOP_GRACE_MS = 30_000;

/** What SIGTERM, SIGINT and a runner that died do: exit while starting, a graceful stop after. */
interface Stopper {
  stop: (why: string) => void;
}

export { loadForCommand } from '../config/source.js';

export async function runDaemon(args: DaemonArgs): Promise<number> {
  const { result, source } = loadForCommand(args);
  if (result.kind === 'error') {
    for (const e of result.errors) process.stderr.write(formatIssue(e) + '\n');
    return 2;
  }
  const config = result.config;
  let accounts: ServiceAccounts | null = null;
  let created: string[] = [];
  if (process.getuid?.() === 0) {
    const found = await serviceAccounts(config);
    if (found.kind === 'error') {
      process.stderr.write(`asmtpd: ${found.message}\n`);
      return 2;
    }
    ({ accounts, created } = found);
  }
  // a worker of Workers N: the primary prepared everything and keeps the pid file
  if (cluster.isWorker) return serve(args, config, source, [], accounts, [], workerStopper());
  const dirs = prepareStateDirectories(config, accounts?.daemon ?? null);
  if (dirs.kind === 'error') {
    process.stderr.write(`asmtpd: ${dirs.message}\n`);
    return 2;
  }
  if (!args.foreground) return detach(config, dirs.dbDirFd, accounts);
  // from before the pid file exists: a stop while starting still removes it (process.exit skips
  // the finally below); the runner and network facts process end with their pipes
  const stopper: Stopper = {
    stop: (why) => {
      process.stderr.write(`asmtpd: ${why} while starting\n`);
      if (args.detached) removePidFile(config.dbDir);
      process.exit(1);
    },
  };
  process.on('SIGTERM', () => stopper.stop('SIGTERM'));
  process.on('SIGINT', () => stopper.stop('SIGINT'));
  try {
    if (args.detached) writePidFile(dirs.dbDirFd);
  } catch (err) {
    process.stderr.write(`asmtpd: cannot write ${join(config.dbDir, 'asmtpd.pid')}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    closeSync(dirs.dbDirFd);
  }
  try {
    return await serve(args, config, source, result.warnings, accounts, created, stopper);
  } finally {
    if (args.detached) removePidFile(config.dbDir);
  }
}

/** Which process this is: the one of Workers 1, or the primary or a worker of Workers N. */
type Role = 'single' | 'primary' | 'worker';

/** A worker's stop while it starts: exit (the primary logs it and starts another). */
function workerStopper(): Stopper {
  const stopper: Stopper = { stop: () => process.exit(1) };
  process.on('SIGTERM', () => stopper.stop('SIGTERM'));
  process.on('SIGINT', () => stopper.stop('SIGINT'));
  return stopper;
}

async function serve(
  args: DaemonArgs,
  config: Config,
  source: string,
  warnings: readonly ConfigIssue[],
  accounts: ServiceAccounts | null,
  created: readonly string[],
  stopper: Stopper,
): Promise<number> {
  tuneHeapForServer();
  const role: Role = cluster.isWorker ? 'worker' : config.workers > 1 ? 'primary' : 'single';
  const log = createLogger({ level: args.verbose ? 'debug' : config.logLevel, lineAtATime: role !== 'single' });
  // A bug must end at most one session (smtp-server answers 451 4.3.0 for a throwing handler),
  // never the listener on port 25: log anything that escapes and keep serving.
  process.on('uncaughtException', (err) => log.error('daemon.error', { error: err.message, stack: err.stack }));
  process.on('unhandledRejection', (err) =>
    log.error('daemon.error', { error: String(err), stack: (err as Error)?.stack }),
  );
  if (role === 'worker') return serveWorker(args, config, accounts, log, stopper);
  for (const w of warnings) log.warn('config.error', { warning: formatIssue(w) });
  if (accounts) {
    for (const path of unreadableBy(accounts.daemon, [...config.tlsCerts, ...config.tlsKeys]))
      log.warn('config.error', {
        warning: `${path}: not readable by DaemonUser ${accounts.daemon.name}: served now, but a SIGHUP cannot re-read it (a renewed certificate needs a restart); e.g. chgrp ${accounts.daemon.name} ${path}; chmod 640 ${path}`,
      });
  }
  for (const name of created) log.info('daemon.account_created', { user: name });
  let runner: RunnerClient;
  // until the daemon is up, what ends it is said on stderr too (the admin starting it reads that)
  let starting = true;
  try {
    const ids = runnerIds(accounts);
    runner = await startRunner({
      // the runner reads the configuration itself (and again on reload): root's file, never the pipe
      entry: {
        main: runnerProcessPath,
        args: [
          `--config=${args.file}`,
          `--file-given=${args.fileGiven ? 1 : 0}`,
          ...(ids.daemonUid === null ? [] : [`--daemon-uid=${ids.daemonUid}`]),
          ...ids.deniedUids.map((u) => `--denied-uid=${u}`),
        ],
      },
      onLog: (line) => {
        log.warn('runner.log', { line });
        if (starting) process.stderr.write(`${line}\n`);
      },
      onExit: (code, signal, expected) => {
        if (expected) return;
        log.error('runner.exit', { code, signal });
        stopper.stop('runner exited');
      },
    });
  } catch (err) {
    process.stderr.write(`asmtpd: cannot start the script runner: ${(err as Error).message}\n`);
    return 1;
  }
  const run = (req: RunRequest): Promise<RunResult> => runner.run(req);
  // SYN capture and route tracing need CAP_NET_RAW: a separate process, started while we are root
  // (facts/netfacts/process.ts); this process gives the capability up with root below
  const netFacts = await openNetFacts(config, log, accounts ? { account: accounts.netFacts } : {});
  const hosts = config.bindAddrs.length ? config.bindAddrs : ['::'];
  const failStart = async (line: string, fields: Record<string, unknown>, code: number): Promise<number> => {
    log.error('daemon.error', fields);
    log.flush();
    process.stderr.write(`asmtpd: ${line}\n`);
    await workers?.stop(0);
    await runner.close();
    await netFacts?.close();
    return code;
  };

  // Workers 1: this process serves SMTP. Workers N: the workers do (daemon/primary.ts), each
  // listening on the sockets this process binds as root, asking it for the runner, the network
  // facts and the global limits.
  let side: SmtpSide | null = null;
  let workers: Workers | null = null;
  // the primary's network facts, for its workers (the one process's are in its Runtime)
  let netSource: NetFactSource | null = role === 'primary' ? (netFacts?.source(config) ?? null) : null;
  if (role === 'single') {
    side = createSmtpSide({
      config,
      log,
      verbose: args.verbose,
      run,
      ...(netFacts ? { net: (c: Config) => netFacts.source(c) } : {}),
    });
    try {
      await side.listen(config.smtpPort, hosts);
    } catch (err) {
      const e = (err as Error).message;
      return failStart(`cannot listen on port ${config.smtpPort}: ${e}`, { error: e, port: config.smtpPort }, 1);
    }
  } else {
    workers = startWorkers({ count: config.workers, log, run, net: () => netSource, netFacts: netFacts !== null });
    try {
      await workers.started;
    } catch (err) {
      const e = (err as Error).message;
      return failStart(`cannot start the SMTP workers: ${e}`, { error: e, port: config.smtpPort }, 1);
    }
  }
  const started = workers;
  // the Prometheus endpoint: bound now (a port below 1024 needs root), served as DaemonUser; with
  // workers, one endpoint here whose figures are the sum of every process's (docs/metrics.md)
  metrics.setVersion(VERSION);
  let metricsListener: MetricsListener | null = null;
  if (config.metricsListen) {
    const served = started
      ? {
          startProcessMetrics: () => metrics.startProcessMetrics(),
          contentType: metrics.contentType,
          render: async () => metrics.renderMerged([await metrics.snapshot(), ...(await started.metrics())]),
        }
      : metrics;
    try {
      metricsListener = await startMetricsListener(config.metricsListen, served);
    } catch (err) {
      const where = config.metricsListen.text;
      const e = (err as Error).message;
      return failStart(`cannot listen on MetricsListen ${where}: ${e}`, { error: e, metrics_listen: where }, 1);
    }
  }
  const privileges: PrivilegeResult | null = accounts ? dropPrivileges(accounts.daemon) : null;
  if (privileges?.kind === 'error') return failStart(privileges.message, { error: privileges.message }, 2);
  log.info(
    'daemon.privileges',
    privileges?.kind === 'dropped' && accounts
      ? {
          user: privileges.account.name,
          uid: privileges.account.uid,
          gid: privileges.account.gid,
          runner_pid: runner.pid,
          avenger_user: accounts.avenger.name,
          netfacts_user: accounts.netFacts.name,
        }
      : {
          uid: process.getuid?.() ?? -1,
          runner_pid: runner.pid,
          note: 'not started as root: every script runs as the invoking user',
        },
  );
  side?.start();
  // Once-per-daemon services start here, in this process only (the primary of Workers N, or the
  // one process), after privileges were given up: the MetricsListen endpoint above, and a
  // scheduler that must not run once per worker.
  starting = false;
  log.info('daemon.start', {
    version: VERSION,
    pid: process.pid,
    config: source,
    port: config.smtpPort,
    addresses: hosts,
    relay: side?.relay.describe() ?? started?.firstReady().relay ?? null,
    privileged: privileges?.kind === 'dropped',
    workers: config.workers,
    ...(started ? { worker_pids: started.pids() } : {}),
    ...(config.metricsListen ? { metrics: config.metricsListen.text } : {}),
  });

  let current = config;
  process.on('SIGHUP', () => {
    const next = loadForCommand(args);
    if (next.result.kind === 'error') {
      log.error('daemon.reload_failed', { config: next.source, errors: next.result.errors.map(formatIssue) });
      return;
    }
    const old = current;
    const cfg = next.result.config;
    current = cfg;
    if (role === 'primary') netSource = netFacts?.source(cfg) ?? null;
    const restartNeeded =
      cfg.smtpPort !== old.smtpPort ||
      cfg.bindAddrs.join() !== old.bindAddrs.join() ||
      cfg.dbDir !== old.dbDir ||
      cfg.daemonUser !== old.daemonUser ||
      cfg.netFactsUser !== old.netFactsUser ||
      cfg.workers !== old.workers ||
      cfg.metricsListen?.text !== old.metricsListen?.text;
    const done = (relay: unknown, extra: Record<string, unknown>): void =>
      log.info('daemon.reload', {
        config: next.source,
        relay,
        ...extra,
        ...(restartNeeded
          ? {
              note: 'changes of SMTPPort, BindAddr, DBDir, DaemonUser, NetFactsUser, Workers and MetricsListen need a restart',
            }
          : {}),
      });
    // the workers each re-read the file (as DaemonUser, as the one process does); logged once all did
    if (side) done(side.reload(cfg).relay, {});
    else
      void started!.reload().then((answers) => {
        const failed = answers.filter((a) => (a as { error?: string } | null)?.error !== undefined);
        done((answers[0] as { relay?: string } | undefined)?.relay ?? null, {
          workers: answers.length,
          ...(failed.length > 0 ? { failed: failed.map((a) => (a as { error: string }).error) } : {}),
        });
      });
    // the runner re-reads the configuration itself
    void runner.reload().then((r) => {
      if (r.kind === 'reloaded') {
        if (r.changes.length > 0 || r.needRestart.length > 0)
          log.info('runner.reload', { changes: r.changes, need_restart: r.needRestart });
      } else log.error('runner.reload', { error: r.kind === 'error' ? r.reason : r.kind });
    });
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      const said = (): void =>
        log.info('daemon.stop', { signal, connections: side?.connections ?? started?.connections ?? 0 });
      // with workers, said once every worker stopped listening (as the one process's line is)
      if (side) said();
      void (side ? side.close(STOP_GRACE_MS) : started!.stop(STOP_GRACE_MS, said))
        .then(() => runner.close())
        .then(() => netFacts?.close())
        .then(() => metricsListener?.close())
        .finally(() => {
          log.flush();
          resolve(0);
          setTimeout(() => process.exit(0), 200).unref();
        });
    };
    stopper.stop = stop;
    if (args.detached) tellParentReady();
  });
}

/**
 * A worker of Workers N (daemon/primary.ts forked it): the SMTP side, with the runner, the network
 * facts and the global limits reached through the primary (daemon/worker-link.ts). The first
 * workers start as root, listen (the primary binds), and give up root as the one process does;
 * a restarted one starts as DaemonUser. SIGHUP and SIGTERM come from the primary over IPC (the
 * signals themselves: SIGHUP is ignored, SIGTERM/SIGINT drain this worker).
 */
async function serveWorker(
  args: DaemonArgs,
  config: Config,
  accounts: ServiceAccounts | null,
  log: Logger,
  stopper: Stopper,
): Promise<number> {
  let side: SmtpSide | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (side ? side.close(STOP_GRACE_MS) : Promise.resolve()).finally(() => {
      log.flush();
      setTimeout(() => process.exit(0), 200).unref();
    });
    return stopping;
  };
  process.on('SIGHUP', () => undefined);
  const link = linkToPrimary({
    // answered once the listeners are closed (frontEnd.close closes them at once); the drain goes on
    stop: () => {
      void stop();
      return Promise.resolve();
    },
    reload: async () => {
      const next = loadForCommand(args);
      if (next.result.kind === 'error') return { error: next.result.errors.map(formatIssue).join('; ') };
      return side ? side.reload(next.result.config) : { error: 'not serving yet' };
    },
    metrics: () => metrics.snapshot(),
    refreshBlocks: () => side?.refreshBlocks(),
    onPrimaryGone: () => void stop(),
  });
  side = createSmtpSide({
    config,
    log,
    verbose: args.verbose,
    worker: cluster.worker?.id ?? 0,
    run: (req) => link.run(req),
    net: (c) => link.net(c),
    shared: link.shared,
    onBlocksChanged: () => link.blocksChanged(),
  });
  const hosts = config.bindAddrs.length ? config.bindAddrs : ['::'];
  try {
    await side.listen(config.smtpPort, hosts);
  } catch (err) {
    process.stderr.write(`asmtpd: worker cannot listen on port ${config.smtpPort}: ${(err as Error).message}\n`);
    return 1;
  }
  const privileges: PrivilegeResult | null = accounts ? dropPrivileges(accounts.daemon) : null;
  if (privileges?.kind === 'error') {
    process.stderr.write(`asmtpd: worker: ${privileges.message}\n`);
    return 2;
  }
  if (config.metricsListen) metrics.startProcessMetrics();
  side.start();
  stopper.stop = () => void stop();
  link.ready({ uid: process.getuid?.() ?? -1, relay: side.relay.describe() });
  return new Promise<number>(() => undefined);
}

/** How long a detaching `asmtpd` waits for its child to serve. */
const READY_TIMEOUT_MS = 60_000;
/** The detached child's end of the readiness pipe (detach() below). */
const READY_FD = 3;

/** Detached: say "serving" on fd 3 if that is the detaching parent's pipe, and close it. */
function tellParentReady(): void {
  try {
    const st = fstatSync(READY_FD);
    if (!st.isSocket() && !st.isFIFO()) return;
    writeSync(READY_FD, 'ready\n');
    closeSync(READY_FD);
  } catch {
    /* no parent waiting (started by hand with --detached), or it gave up */
  }
}

/**
 * Re-run in the background with -d --detached and wait until the child serves (its line on fd 3):
 * 0 then; 1 if it exits first, or is not serving within READY_TIMEOUT_MS (then it is stopped).
 */
function detach(config: Config, dbDirFd: number, accounts: ServiceAccounts | null): Promise<number> {
  const logFile = join(config.dbDir, LOG_FILE);
  let fd: number;
  try {
    fd = openLogFile(dbDirFd, accounts?.daemon.uid ?? null);
  } catch (err) {
    process.stderr.write(`asmtpd: cannot open ${logFile}: ${(err as Error).message}\n`);
    return Promise.resolve(1);
  } finally {
    closeSync(dbDirFd);
  }
  const argv = [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '-d', '--detached'];
  const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', fd, fd, 'pipe'] });
  closeSync(fd);
  const ready = child.stdio[READY_FD] as Readable;
  return new Promise((resolve) => {
    const done = (code: number, line: string): void => {
      clearTimeout(timer);
      child.removeAllListeners('exit');
      ready.destroy();
      child.unref();
      (code === 0 ? process.stdout : process.stderr).write(`asmtpd: ${line}\n`);
      resolve(code);
    };
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      done(1, `not serving after ${READY_TIMEOUT_MS / 1000} s: stopped pid ${child.pid}; see ${logFile}`);
    }, READY_TIMEOUT_MS);
    ready.on('data', () => done(0, `started, pid ${child.pid}, log ${logFile}`));
    ready.on('error', () => undefined);
    child.once('exit', (code, signal) =>
      done(1, `failed to start (${signal ? `signal ${signal}` : `exit ${code}`}); see ${logFile}`),
    );
  });
}

export type { Logger, Relay };
