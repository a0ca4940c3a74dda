/**
 * worker-link.ts — a worker's side of Workers N: what it asks the primary (daemon/primary.ts)
 * over the cluster's IPC channel (daemon/ipc.ts) instead of doing it itself.
 *
 *   linkToPrimary(handlers) -> WorkerLink
 *     .run(request)          a script decision or body test: the primary passes it to the one
 *                            script runner (root) and returns its result, as the runner's pipe would
 *     .net(config)           the NetFactSource of the network facts process, whose SYN table is the
 *                            primary's (null when the primary has none, or SynFP and NetPath are off)
 *     .shared                MaxClients/MaxClientsPerIP and AUTH failures, counted by the primary
 *     .ready(info)           this worker listens and serves
 *     .blocksChanged()       this worker's blocklist changed: the primary has the others refresh
 *   handlers: reload() (SIGHUP, from the primary) answered when done, stop() (SIGTERM) answered once
 *   the listeners are closed (the worker drains and exits by itself);
 *   metrics() answers this worker's figures for the primary's MetricsListen; refreshBlocks().
 *
 * When the channel breaks (the primary is gone) a run is an error result, a fact is null, a
 * connection is admitted uncounted, and `onPrimaryGone` lets the daemon stop.
 */
import type { RunRequest, RunResult } from '@asmtpd/avenger-runner';
import type { Config } from '../config/types.js';
import type { NetFactSource, RouteFact, SynFact } from '../facts/client-facts.js';
import type { AdmitVerdict, SharedLimits } from '../smtp/connections.js';
import type { AuthFailureCounter } from '../smtp/auth-limiter.js';
import { createIpc, type IpcChannel } from './ipc.js';

/** set by the primary in a worker's environment: the network facts process runs */
export const NETFACTS_ENV = 'ASMTPD_WORKER_NETFACTS';

export interface WorkerHandlers {
  reload(): Promise<unknown>;
  /** start draining; resolves once the listeners are closed */
  stop(): Promise<void>;
  metrics(): Promise<unknown>;
  /** another worker's blocklist changed */
  refreshBlocks(): void;
  onPrimaryGone(): void;
}

export interface WorkerLink {
  run(request: RunRequest): Promise<RunResult>;
  net(config: Config): NetFactSource | null;
  shared: { limits: SharedLimits; authFailures: AuthFailureCounter };
  ready(info: Record<string, unknown>): void;
  /** this worker's blocklist changed: the primary tells the others; resolves once they re-read it */
  blocksChanged(): Promise<void>;
}

export function linkToPrimary(handlers: WorkerHandlers): WorkerLink {
  const channel = process as unknown as IpcChannel;
  const ipc = createIpc(channel, {
    reload: () => handlers.reload(),
    stop: () => handlers.stop(),
    metrics: () => handlers.metrics(),
    blocks: () => handlers.refreshBlocks(),
  });
  channel.on('disconnect', () => handlers.onPrimaryGone());
  const netFacts = process.env[NETFACTS_ENV] === '1';
  return {
    run: (request) =>
      ipc
        .call<RunResult>('run', request)
        .catch((err: Error): RunResult => ({ kind: 'error', reason: `runner not reachable: ${err.message}` })),
    net(config) {
      const synOn = config.synFp !== false;
      if (!netFacts || (!synOn && !config.netPath)) return null;
      return {
        syn: (ip, port) =>
          synOn ? ipc.call<SynFact | null>('syn', { ip, port }).catch(() => null) : Promise.resolve(null),
        route: config.netPath ? (ip) => ipc.call<RouteFact | null>('route', { ip }).catch(() => null) : null,
      };
    },
    shared: {
      limits: {
        admit: (ip, maxClients, maxPerIp) => ipc.call<AdmitVerdict>('admit', { ip, maxClients, maxPerIp }),
        release: (ip) => ipc.tell('release', { ip }),
      },
      authFailures: {
        count: (ip) => ipc.call<number>('authCount', { ip }),
        fail: (ip) => ipc.call<number>('authFail', { ip }),
      },
    },
    ready: (info) => ipc.tell('ready', info),
    blocksChanged: () =>
      ipc.call('blocks').then(
        () => undefined,
        () => undefined,
      ),
  };
}
