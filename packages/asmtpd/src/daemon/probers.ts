/**
 * probers.ts — the bounce prober of a configuration, over the SQLite state database
 * (DBDir/state.sqlite). The database is opened on the first probe, so that it is created by the
 * unprivileged daemon after it gave up root (not as root before), and kept for the process's
 * life: a DBDir changed by SIGHUP takes effect at the next start.
 *
 *   stateDbProbers(dbDir) -> { factory: ProberFactory, db(), close() }
 *                            db(): the state database, opened at its first use (the recipient
 *                            verifier's cache shares it, daemon/verifiers.ts)
 *   memoryProbers()       -> the same over an in-memory database (--avenge: no shared state)
 */
import { join } from 'node:path';
import { openStateDb, type StateDb } from '../store/state-db.js';
import { createBounceProber, type BounceProber } from '../facts/bounce-probe.js';
import type { ProberFactory } from '../smtp/runtime.js';

export interface Probers {
  factory: ProberFactory;
  db(): StateDb;
  close(): void;
}

function probersOver(open: () => StateDb): Probers {
  let db: StateDb | null = null;
  const shared = (): StateDb => (db ??= open());
  const factory: ProberFactory = (config, resolver, log) => {
    let prober: BounceProber | null = null;
    return {
      probe(sender) {
        db ??= open();
        prober ??= createBounceProber({
          hostname: config.hostname,
          timeoutMs: config.smtpCallbackTimeoutMs,
          cacheTtlMs: config.smtpCallbackCacheTtlMs,
          db,
          resolver,
          log,
        });
        return prober.probe(sender);
      },
    };
  };
  return { factory, db: shared, close: () => db?.close() };
}

export function stateDbProbers(dbDir: string): Probers {
  return probersOver(() => openStateDb(join(dbDir, 'state.sqlite')));
}

export function memoryProbers(): Probers {
  return probersOver(() => openStateDb(':memory:'));
}
