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
import { closeSync, fstatSync, mkdirSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { formatIssue, type ConfigIssue } from '../config/load.js';
import type { Config } from '../config/types.js';
import { createLogger, type Logger } from '../log/logger.js';
import { countHeld, createRelay } from '../relay/index.js';
import { startHoldRetry } from '../relay/hold-retry.js';
import { metrics } from '../metrics/metrics.js';
import { startMetricsListener, type MetricsListener } from '../daemon/metrics-listener.js';
import type { Relay } from '../relay/types.js';
import { buildRuntime, type Runtime, type RuntimeServices } from '../smtp/runtime.js';
import { helperEnvironment } from '../daemon/script-helper-env.js';
import { stateDbProbers } from '../daemon/probers.js';
import { createVerifiers } from '../daemon/verifiers.js';
import { createBlocklist } from '../daemon/blocklist.js';
import { sharedResolvers } from '../dns/resolver.js';
import { dropPrivileges, type PrivilegeResult } from '../daemon/privileges.js';
import { serviceAccounts, type ServiceAccounts } from '../daemon/service-accounts.js';
import { openLogFile, prepareStateDirectories, removePidFile, writePidFile, LOG_FILE } from '../daemon/state-dirs.js';
import { runnerIds } from '../daemon/runner-settings.js';
import { runnerProcessPath } from '../daemon/runner-entry.js';
import { tuneHeapForServer } from '../daemon/heap.js';
import { startRunner, type RunnerClient } from '@asmtpd/avenger-runner';
import { openNetFacts } from '../facts/netfacts/client.js';
import { createFrontEnd, type FrontEnd, type ListenerKind } from '../smtp/front-end.js';
import { createHeldMail } from '../daemon/held-mail.js';
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
  const log = createLogger({ level: args.verbose ? 'debug' : config.logLevel });
  // A bug must end at most one session (smtp-server answers 451 4.3.0 for a throwing handler),
  // never the listener on port 25: log anything that escapes and keep serving.
  process.on('uncaughtException', (err) => log.error('daemon.error', { error: err.message, stack: err.stack }));
  process.on('unhandledRejection', (err) =>
    log.error('daemon.error', { error: String(err), stack: (err as Error)?.stack }),
  );
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
  const run = (req: Parameters<RunnerClient['run']>[0]): ReturnType<RunnerClient['run']> => runner.run(req);
  // SYN capture and route tracing need CAP_NET_RAW: a separate process, started while we are root
  // (facts/netfacts/process.ts); this process gives the capability up with root below
  const netFacts = await openNetFacts(config, log, accounts ? { account: accounts.netFacts } : {});
  let relay = createRelay(config, log);
  const probers = stateDbProbers(config.dbDir);
  const verifiers = createVerifiers(probers.db, log);
  // dictionary-attack blocking (issue 19): its set is read once privileges are given up (below)
  const blocklist = createBlocklist({ db: probers.db, record: verifiers.recordUnknown, log });
  const services: RuntimeServices = {
    helperEnv: helperEnvironment,
    prober: probers.factory,
    verifier: verifiers.factory,
    abuse: blocklist.guard,
    resolver: sharedResolvers(),
    ...(netFacts ? { net: (c: Config) => netFacts.source(c) } : {}),
  };
  let runtime: Runtime = buildRuntime(config, relay, run, log, services);
  const frontEnd = createFrontEnd({
    runtime: () => runtime,
    log,
    verbose: args.verbose,
    version: VERSION,
    // ETRN and ATRN reach the hold queue of the configuration in force
    heldMail: createHeldMail(() => runtime, log),
  });

  const hosts = config.bindAddrs.length ? config.bindAddrs : ['::'];
  try {
    for (const host of hosts) await listenWithFallback(frontEnd, config.smtpPort, host);
  } catch (err) {
    log.error('daemon.error', { error: (err as Error).message, port: config.smtpPort });
    log.flush();
    process.stderr.write(`asmtpd: cannot listen on port ${config.smtpPort}: ${(err as Error).message}\n`);
    await netFacts?.close();
    return 1;
  }
  // On-Demand Mail Relay (RFC 2645): its own listener at every address, bound while we are root (366)
  try {
    if (config.odmrPort !== null)
      for (const host of hosts) await listenWithFallback(frontEnd, config.odmrPort, host, 'odmr');
  } catch (err) {
    log.error('daemon.error', { error: (err as Error).message, port: config.odmrPort });
    log.flush();
    process.stderr.write(`asmtpd: cannot listen on ODMRPort ${config.odmrPort}: ${(err as Error).message}\n`);
    await netFacts?.close();
    return 1;
  }
  // the Prometheus endpoint: bound now (a port below 1024 needs root), served as DaemonUser
  metrics.setVersion(VERSION);
  metrics.watch({
    connections: () => frontEnd.stats().connections,
    holdQueue: () => countHeld(runtime.config.holdQueue),
  });
  let metricsListener: MetricsListener | null = null;
  if (config.metricsListen) {
    try {
      metricsListener = await startMetricsListener(config.metricsListen, metrics);
    } catch (err) {
      const where = config.metricsListen.text;
      log.error('daemon.error', { error: (err as Error).message, metrics_listen: where });
      log.flush();
      process.stderr.write(`asmtpd: cannot listen on MetricsListen ${where}: ${(err as Error).message}\n`);
      await runner.close();
      await netFacts?.close();
      return 1;
    }
  }
  const privileges: PrivilegeResult | null = accounts ? dropPrivileges(accounts.daemon) : null;
  if (privileges?.kind === 'error') {
    log.error('daemon.error', { error: privileges.message });
    log.flush();
    process.stderr.write(`asmtpd: ${privileges.message}\n`);
    await runner.close();
    await netFacts?.close();
    return 2;
  }
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
  blocklist.start();
  starting = false;
  log.info('daemon.start', {
    version: VERSION,
    pid: process.pid,
    config: source,
    port: config.smtpPort,
    ...(config.odmrPort !== null ? { odmr_port: config.odmrPort } : {}),
    addresses: hosts,
    relay: relay.describe(),
    privileged: privileges?.kind === 'dropped',
    ...(config.metricsListen ? { metrics: config.metricsListen.text } : {}),
  });

  process.on('SIGHUP', () => {
    const next = loadForCommand(args);
    if (next.result.kind === 'error') {
      log.error('daemon.reload_failed', { config: next.source, errors: next.result.errors.map(formatIssue) });
      return;
    }
    const old = runtime;
    const cfg = next.result.config;
    prepareOwnDirectories(cfg, log);
    if (relaySettings(cfg) !== relaySettings(old.config)) {
      const retired = relay;
      relay = createRelay(cfg, log);
      // sessions that started on the old relay may still be delivering: close it later
      setTimeout(() => void retired.close(), cfg.dataTimeoutMs + 60_000).unref();
    }
    runtime = buildRuntime(cfg, relay, run, log, services);
    frontEnd.applyConfig(cfg);
    const restartNeeded =
      cfg.smtpPort !== old.config.smtpPort ||
      cfg.odmrPort !== old.config.odmrPort ||
      cfg.bindAddrs.join() !== old.config.bindAddrs.join() ||
      cfg.dbDir !== old.config.dbDir ||
      cfg.daemonUser !== old.config.daemonUser ||
      cfg.netFactsUser !== old.config.netFactsUser ||
      cfg.metricsListen?.text !== old.config.metricsListen?.text;
    log.info('daemon.reload', {
      config: next.source,
      relay: relay.describe(),
      ...(restartNeeded
        ? {
            note: 'changes of SMTPPort, ODMRPort, BindAddr, DBDir, DaemonUser, NetFactsUser and MetricsListen need a restart',
          }
        : {}),
    });
    // the runner re-reads the configuration itself
    void runner.reload().then((r) => {
      if (r.kind === 'reloaded') {
        if (r.changes.length > 0 || r.needRestart.length > 0)
          log.info('runner.reload', { changes: r.changes, need_restart: r.needRestart });
      } else log.error('runner.reload', { error: r.kind === 'error' ? r.reason : r.kind });
    });
  });

  const holdRetry = startHoldRetry(() => runtime.config, log); // held mail retried (issue 20): this process only
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info('daemon.stop', { signal, connections: frontEnd.stats().connections });
      void frontEnd
        .close(STOP_GRACE_MS)
        .then(() => holdRetry.stop())
        .then(() => relay.close())
        .then(() => verifiers.close())
        .then(() => runner.close())
        .then(() => netFacts?.close())
        .then(() => metricsListener?.close())
        .finally(() => {
          blocklist.close();
          probers.close();
          log.flush();
          resolve(0);
          setTimeout(() => process.exit(0), 200).unref();
        });
    };
    stopper.stop = stop;
    if (args.detached) tellParentReady();
  });
}

function relaySettings(c: Config): string {
  return JSON.stringify([
    c.relayHost,
    c.sendmail,
    c.holdQueue,
    c.holdOnFailure,
    c.relayTimeoutMs,
    c.relayConnections,
    c.hostname,
    c.relayDomains,
    c.holdDomains,
    c.mailertable,
    c.rcptVerifySubdomains,
  ]);
}

/** After SIGHUP, as DaemonUser: what the SMTP process itself keeps in DBDir. */
function prepareOwnDirectories(c: Config, log: Logger): void {
  try {
    mkdirSync(join(c.dbDir, 'spool'), { recursive: true, mode: 0o700 });
    mkdirSync(c.holdQueue, { recursive: true, mode: 0o700 });
  } catch (err) {
    log.error('daemon.error', { error: `cannot prepare ${c.dbDir}: ${(err as Error).message}` });
  }
}

async function listenWithFallback(fe: FrontEnd, port: number, host: string, kind?: ListenerKind): Promise<void> {
  try {
    await fe.listen(port, host, kind);
  } catch (err) {
    // a host without IPv6: "all addresses" falls back to all IPv4 addresses
    if (host === '::' && ['EAFNOSUPPORT', 'EADDRNOTAVAIL'].includes((err as NodeJS.ErrnoException).code ?? '')) {
      await fe.listen(port, '0.0.0.0', kind);
      return;
    }
    throw err;
  }
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
