/**
 * daemon.ts — `asmtpd [-d] [--verbose] [-f FILE]`: load the configuration, listen, serve.
 *
 * Without -d the daemon detaches: it re-runs itself with -d in the background, its log appended
 * to DBDir/asmtpd.log and its pid in DBDir/asmtpd.pid, and the command returns once it listens.
 * Signals: SIGHUP re-reads the configuration (a broken file is refused and logged, the running one
 * stays; listening addresses need a restart); SIGTERM/SIGINT stop accepting, let sessions in DATA
 * finish (30 s at most), then exit 0.
 * Started as root, it starts the script runner and (SynFP/NetPath) the network facts process
 * (netfacts/), both keeping their privileges, then listens and gives up root (daemon/privileges.ts).
 */
import { existsSync, mkdirSync, openSync, writeFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig, formatIssue, parseConfigText, type ConfigResult } from '../config/load.js';
import type { Config } from '../config/types.js';
import { createLogger, type Logger } from '../log/logger.js';
import { createRelay } from '../relay/index.js';
import type { Relay } from '../relay/types.js';
import { buildRuntime, type Runtime, type RuntimeServices } from '../daemon/runtime.js';
import { helperEnvironment } from './script-helper-env.js';
import { stateDbProbers } from '../daemon/probers.js';
import { sharedResolvers } from '../dns/resolver.js';
import { dropPrivileges } from '../daemon/privileges.js';
import { tuneHeapForServer } from '../daemon/heap.js';
import { startRunner, type RunnerClient } from '@asmtpd/avenger-runner';
import { openNetFacts } from '../netfacts/client.js';
import { createFrontEnd, type FrontEnd } from '../smtp/front-end.js';
import { EMBEDDED_LABEL, embeddedConfigText } from './embedded.js';
import { VERSION } from '../version.js';

export interface DaemonArgs {
  file: string;
  fileGiven: boolean;
  foreground: boolean;
  verbose: boolean;
}

const STOP_GRACE_MS = 30_000;

/** The configuration file, or the embedded default when there is none (and no -f). */
export function loadForCommand(args: { file: string; fileGiven: boolean }): { result: ConfigResult; source: string } {
  if (!args.fileGiven && !existsSync(args.file)) {
    return { result: parseConfigText(embeddedConfigText(), EMBEDDED_LABEL), source: EMBEDDED_LABEL };
  }
  return { result: loadConfig(args.file), source: args.file };
}

export async function runDaemon(args: DaemonArgs): Promise<number> {
  const { result, source } = loadForCommand(args);
  if (result.kind === 'error') {
    for (const e of result.errors) process.stderr.write(formatIssue(e) + '\n');
    return 2;
  }
  const config = result.config;
  prepareDirectories(config);
  if (!args.foreground) return detach(config);

  tuneHeapForServer();
  const log = createLogger({ level: args.verbose ? 'debug' : config.logLevel });
  // A bug must end at most one session (smtp-server answers 451 4.3.0 for a throwing handler),
  // never the listener on port 25: log anything that escapes and keep serving.
  process.on('uncaughtException', (err) => log.error('daemon.error', { error: err.message, stack: err.stack }));
  process.on('unhandledRejection', (err) => log.error('daemon.error', { error: String(err), stack: (err as Error)?.stack }));
  for (const w of result.warnings) log.warn('config.error', { warning: formatIssue(w) });
  let runner: RunnerClient;
  let stopNow: (why: string) => void = () => process.exit(1);
  try {
    runner = await startRunner({
      onLog: (line) => log.warn('runner.log', { line }),
      onExit: (code, signal, expected) => {
        if (expected) return;
        log.error('runner.exit', { code, signal });
        stopNow('runner exited');
      },
    });
  } catch (err) {
    process.stderr.write(`asmtpd: cannot start the script runner: ${(err as Error).message}\n`);
    return 1;
  }
  const run = (req: Parameters<RunnerClient['run']>[0]): ReturnType<RunnerClient['run']> => runner.run(req);
  // SYN capture and route tracing need CAP_NET_RAW: a separate process, started while we are root
  // (netfacts/process.ts); this process gives the capability up with root below
  const netFacts = await openNetFacts(config, log);
  let relay = createRelay(config, log);
  const probers = stateDbProbers(config.dbDir);
  const services: RuntimeServices = {
    helperEnv: helperEnvironment, prober: probers.factory, resolver: sharedResolvers(),
    ...(netFacts ? { net: (c: Config) => netFacts.source(c) } : {}),
  };
  let runtime: Runtime = buildRuntime(config, relay, run, log, services);
  const frontEnd = createFrontEnd({ runtime: () => runtime, log, verbose: args.verbose, version: VERSION });

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
  const privileges = await dropPrivileges(config);
  if (privileges.kind === 'error') {
    log.error('daemon.error', { error: privileges.message });
    log.flush();
    process.stderr.write(`asmtpd: ${privileges.message}\n`);
    await runner.close();
    await netFacts?.close();
    return 2;
  }
  log.info('daemon.privileges', privileges.kind === 'dropped'
    ? { user: privileges.account.name, uid: privileges.account.uid, gid: privileges.account.gid, runner_pid: runner.pid }
    : { uid: privileges.uid, runner_pid: runner.pid, note: 'not started as root: every script runs as the invoking user' });
  log.info('daemon.start', {
    version: VERSION, pid: process.pid, config: source, port: config.smtpPort, addresses: hosts,
    relay: relay.describe(), privileged: privileges.kind === 'dropped',
  });

  process.on('SIGHUP', () => {
    const next = loadForCommand(args);
    if (next.result.kind === 'error') {
      log.error('daemon.reload_failed', { config: next.source, errors: next.result.errors.map(formatIssue) });
      return;
    }
    const old = runtime;
    const cfg = next.result.config;
    prepareDirectories(cfg);
    if (relaySettings(cfg) !== relaySettings(old.config)) {
      const retired = relay;
      relay = createRelay(cfg, log);
      // sessions that started on the old relay may still be delivering: close it later
      setTimeout(() => void retired.close(), cfg.dataTimeoutMs + 60_000).unref();
    }
    runtime = buildRuntime(cfg, relay, run, log, services);
    frontEnd.applyConfig(cfg);
    const restartNeeded = cfg.smtpPort !== old.config.smtpPort || cfg.bindAddrs.join() !== old.config.bindAddrs.join();
    log.info('daemon.reload', { config: next.source, relay: relay.describe(), ...(restartNeeded ? { note: 'SMTPPort/BindAddr changes need a restart' } : {}) });
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info('daemon.stop', { signal, connections: frontEnd.stats().connections });
      void frontEnd
        .close(STOP_GRACE_MS)
        .then(() => relay.close())
        .then(() => runner.close())
        .then(() => netFacts?.close())
        .finally(() => {
          probers.close();
          log.flush();
          if (!args.foreground) rmSync(join(runtime.config.dbDir, 'asmtpd.pid'), { force: true });
          resolve(0);
          setTimeout(() => process.exit(0), 200).unref();
        });
    };
    stopNow = stop;
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

function relaySettings(c: Config): string {
  return JSON.stringify([c.relayHost, c.sendmail, c.holdQueue, c.holdOnFailure, c.relayTimeoutMs, c.relayConnections, c.hostname]);
}

function prepareDirectories(c: Config): void {
  mkdirSync(join(c.dbDir, 'spool'), { recursive: true, mode: 0o700 });
  mkdirSync(c.holdQueue, { recursive: true, mode: 0o700 });
}

async function listenWithFallback(fe: FrontEnd, port: number, host: string): Promise<void> {
  try {
    await fe.listen(port, host);
  } catch (err) {
    // a host without IPv6: "all addresses" falls back to all IPv4 addresses
    if (host === '::' && ['EAFNOSUPPORT', 'EADDRNOTAVAIL'].includes((err as NodeJS.ErrnoException).code ?? '')) {
      await fe.listen(port, '0.0.0.0');
      return;
    }
    throw err;
  }
}

/** Re-run in the background with -d; return once the child listens (or failed). */
function detach(config: Config): Promise<number> {
  const logFile = join(config.dbDir, 'asmtpd.log');
  const pidFile = join(config.dbDir, 'asmtpd.pid');
  const fd = openSync(logFile, 'a', 0o600);
  const argv = [...process.execArgv, process.argv[1]!, ...process.argv.slice(2), '-d'];
  const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', fd, fd] });
  writeFileSync(pidFile, `${child.pid}\n`);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.unref();
      process.stdout.write(`asmtpd: started, pid ${child.pid}, log ${logFile}\n`);
      resolve(0);
    }, 1500);
    child.once('exit', (code) => {
      clearTimeout(timer);
      process.stderr.write(`asmtpd: failed to start (exit ${code}); see ${logFile}\n`);
      resolve(1);
    });
  });
}

export type { Logger, Relay };
