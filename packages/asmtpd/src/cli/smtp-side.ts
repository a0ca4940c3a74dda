/**
 * smtp-side.ts — the SMTP side of a daemon process: the relay, the state database's probers and
 * verifiers, the dictionary-attack blocklist, the Runtime and the front end, with what SIGHUP and
 * SIGTERM do to them. The one process of `Workers 1` and each worker of `Workers N` run one
 * (cli/daemon.ts); the primary of `Workers N` runs none.
 *
 *   createSmtpSide({config, log, verbose, run, net?, shared?}) -> SmtpSide
 *     .listen(port, hosts)   every address (all addresses: IPv6, or IPv4 on a host without it)
 *     .start()               after privileges are given up: the blocklist reads its set
 *     .reload(config)        SIGHUP's new configuration: a new Runtime (a new relay when its
 *                            settings changed), the front end's options and certificates
 *     .close(graceMs)        stop accepting, drain (sessions in DATA may finish), close the rest
 *     .connections           open connections of this process
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunRequest, RunResult } from '@asmtpd/avenger-runner';
import type { Config } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { NetFactSource } from '../facts/client-facts.js';
import { countHeld, createRelay } from '../relay/index.js';
import type { Relay } from '../relay/types.js';
import { metrics } from '../metrics/metrics.js';
import { buildRuntime, type Runtime, type RuntimeServices } from '../smtp/runtime.js';
import { createFrontEnd, type FrontEnd, type FrontEndDeps } from '../smtp/front-end.js';
import { helperEnvironment } from '../daemon/script-helper-env.js';
import { stateDbProbers } from '../daemon/probers.js';
import { createVerifiers } from '../daemon/verifiers.js';
import { createBlocklist } from '../daemon/blocklist.js';
import { sharedResolvers } from '../dns/resolver.js';
import { VERSION } from '../version.js';

export interface SmtpSideOptions {
  config: Config;
  log: Logger;
  verbose: boolean;
  run(request: RunRequest): Promise<RunResult>;
  net?: (config: Config) => NetFactSource | null;
  shared?: FrontEndDeps['shared'];
  /** Workers N: this worker's number (named in session.connect) */
  worker?: number;
  /** Workers N: this worker's blocklist changed (the primary tells the others to refresh) */
  onBlocksChanged?: () => void;
}

export interface SmtpSide {
  listen(port: number, hosts: readonly string[]): Promise<void>;
  start(): void;
  /** Workers N: another worker's blocklist changed: re-read it now */
  refreshBlocks(): void;
  reload(config: Config): { relay: string };
  close(graceMs: number): Promise<void>;
  readonly connections: number;
  readonly relay: Relay;
}

export function createSmtpSide(o: SmtpSideOptions): SmtpSide {
  const { log } = o;
  let relay = createRelay(o.config, log);
  const probers = stateDbProbers(o.config.dbDir);
  const verifiers = createVerifiers(probers.db, log);
  // dictionary-attack blocking (issue 19): in the state database, so every worker sees every
  // block: at once when a worker changed it (onBlocksChanged), within a second of another
  // process's change (asmtpd --blocklist); its set is read at start()
  const blocklist = createBlocklist({
    db: probers.db,
    record: verifiers.recordUnknown,
    log,
    ...(o.onBlocksChanged ? { onChange: o.onBlocksChanged } : {}),
  });
  const services: RuntimeServices = {
    helperEnv: helperEnvironment,
    prober: probers.factory,
    verifier: verifiers.factory,
    abuse: blocklist.guard,
    resolver: sharedResolvers(),
    ...(o.net ? { net: o.net } : {}),
  };
  let runtime: Runtime = buildRuntime(o.config, relay, o.run, log, services);
  const frontEnd: FrontEnd = createFrontEnd({
    runtime: () => runtime,
    log,
    verbose: o.verbose,
    version: VERSION,
    ...(o.shared ? { shared: o.shared } : {}),
    ...(o.worker ? { worker: o.worker } : {}),
  });
  metrics.setVersion(VERSION);
  metrics.watch({
    connections: () => frontEnd.stats().connections,
    holdQueue: () => countHeld(runtime.config.holdQueue),
  });

  return {
    async listen(port, hosts) {
      for (const host of hosts) await listenWithFallback(frontEnd, port, host);
    },
    start: () => blocklist.start(),
    refreshBlocks: () => blocklist.refresh(),
    reload(cfg) {
      prepareOwnDirectories(cfg, log);
      if (relaySettings(cfg) !== relaySettings(runtime.config)) {
        const retired = relay;
        relay = createRelay(cfg, log);
        // sessions that started on the old relay may still be delivering: close it later
        setTimeout(() => void retired.close(), cfg.dataTimeoutMs + 60_000).unref();
      }
      runtime = buildRuntime(cfg, relay, o.run, log, services);
      frontEnd.applyConfig(cfg);
      return { relay: relay.describe() };
    },
    async close(graceMs) {
      try {
        await frontEnd.close(graceMs);
        await relay.close();
        await verifiers.close();
      } finally {
        blocklist.close();
        probers.close();
      }
    },
    get connections() {
      return frontEnd.stats().connections;
    },
    get relay() {
      return relay;
    },
  };
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
