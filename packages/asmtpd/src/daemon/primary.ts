/**
 * primary.ts — Workers N: the primary process's side. It forks the SMTP workers with node:cluster,
 * answers what they ask (daemon/worker-link.ts), restarts a worker that dies, and passes SIGHUP and
 * SIGTERM on to all of them.
 *
 *   startWorkers(deps) -> Workers
 *     .started            resolves once every first worker listens (rejects if one exits first)
 *     .reload()           every live worker reloads its configuration; resolves with their answers
 *     .stop(graceMs)      every worker drains (as SIGTERM does in one process) and exits
 *     .metrics()          every live worker's figures (Metrics.snapshot), for MetricsListen
 *     .connections        connections counted over all workers (GlobalLimits)
 *     .pids()
 *
 * Listening (docs/decisions.md "Workers"): node:cluster with scheduling SCHED_NONE — the primary
 * binds each listening address once (as root, while the first workers start) and every worker
 * accepts on that same socket; round robin (the primary accepting and passing each connection on)
 * is what NODE_CLUSTER_SCHED_POLICY=rr gives, measured slower (bench/workers). The first workers are
 * forked while the primary is still root and give up root themselves once they listen (as the one
 * process did: daemon/privileges.ts); a worker restarted later is forked by the primary as
 * DaemonUser. What each worker asks: `run` (the script runner's requests, passed to the one runner),
 * `syn`/`route` (the network facts process), `admit`/`release` and `authCount`/`authFail`
 * (GlobalLimits), `blocks` (its blocklist changed: the others re-read theirs), `ready`.
 */
import cluster, { type Worker } from 'node:cluster';
import type { RunRequest, RunResult } from '@asmtpd/avenger-runner';
import type { Logger } from '../log/logger.js';
import type { NetFactSource } from '../facts/client-facts.js';
import { GlobalLimits } from './global-limits.js';
import { createIpc, type Ipc, type IpcChannel } from './ipc.js';
import { NETFACTS_ENV } from './worker-link.js';

export interface PrimaryDeps {
  count: number;
  log: Logger;
  run(request: RunRequest): Promise<RunResult>;
  /** the network facts of the current configuration (null: none) */
  net(): NetFactSource | null;
  netFacts: boolean;
}

export interface Workers {
  readonly started: Promise<void>;
  reload(): Promise<unknown[]>;
  /** onListening closed: every worker stopped accepting (its listeners are closed; the primary's
   *  shared socket with them) */
  stop(graceMs: number, onListenersClosed?: () => void): Promise<void>;
  metrics(): Promise<unknown[]>;
  readonly connections: number;
  pids(): number[];
  /** what the first worker said when it was ready (its relay, for daemon.start) */
  firstReady(): { relay?: string };
}

/** restarts within RESTART_WINDOW_MS beyond which the next waits RESTART_BACKOFF_MS (a crash loop) */
const RESTART_BURST = 5;
const RESTART_WINDOW_MS = 60_000;
const RESTART_BACKOFF_MS = 5_000;

interface Live {
  worker: Worker;
  ipc: Ipc;
  ready: boolean;
}

export function startWorkers(deps: PrimaryDeps): Workers {
  const { log } = deps;
  const limits = new GlobalLimits();
  const live = new Map<number, Live>();
  let stopping = false;
  let restarts: number[] = [];
  if (!process.env.NODE_CLUSTER_SCHED_POLICY) cluster.schedulingPolicy = cluster.SCHED_NONE;
  // the same program and arguments; --detached is the primary's alone (the pid file)
  cluster.setupPrimary({
    exec: process.argv[1]!,
    args: process.argv.slice(2).filter((a) => a !== '--detached'),
    execArgv: process.execArgv,
  });

  let startedResolve: () => void = () => undefined;
  let startedReject: (err: Error) => void = () => undefined;
  const started = new Promise<void>((resolve, reject) => {
    startedResolve = resolve;
    startedReject = reject;
  });
  let firstDone = false;
  let firstInfo: { relay?: string } = {};

  const fork = (restarted: boolean): void => {
    const worker = cluster.fork({ [NETFACTS_ENV]: deps.netFacts ? '1' : '0' });
    const id = worker.id;
    const entry: Live = { worker, ready: false, ipc: null as unknown as Ipc };
    entry.ipc = createIpc(worker as unknown as IpcChannel, {
      run: (req) => deps.run(req as RunRequest),
      syn: (a) => {
        const { ip, port } = a as { ip: string; port: number };
        return deps.net()?.syn(ip, port) ?? null;
      },
      route: (a) => deps.net()?.route?.((a as { ip: string }).ip) ?? null,
      admit: (a) => {
        const { ip, maxClients, maxPerIp } = a as { ip: string; maxClients: number; maxPerIp: number };
        return limits.admit(id, ip, maxClients, maxPerIp);
      },
      release: (a) => limits.release(id, (a as { ip: string }).ip),
      authCount: (a) => limits.authFailures.count((a as { ip: string }).ip),
      authFail: (a) => limits.authFailures.fail((a as { ip: string }).ip),
      // a block one worker added (or re-read) holds on the others at once: answered once they re-read
      blocks: () =>
        Promise.all(
          [...live.values()].filter((l) => l !== entry && l.ready).map((l) => l.ipc.call('blocks').catch(() => null)),
        ).then(() => null),
      ready: (info) => {
        entry.ready = true;
        if (!firstDone) firstInfo = info as { relay?: string };
        log.info('worker.start', { worker: id, pid: worker.process.pid, restarted, ...(info as object) });
        if (!firstDone && [...live.values()].every((l) => l.ready)) {
          firstDone = true;
          startedResolve();
        }
      },
    });
    live.set(id, entry);
    worker.on('exit', (code, signal) => {
      live.delete(id);
      entry.ipc.close();
      limits.forget(id);
      if (stopping) return;
      if (!firstDone) {
        startedReject(new Error(`worker ${id} exited before it served (${signal ?? `code ${code}`})`));
        return;
      }
      const now = Date.now();
      restarts = [...restarts.filter((t) => now - t < RESTART_WINDOW_MS), now];
      const delayMs = restarts.length > RESTART_BURST ? RESTART_BACKOFF_MS : 0;
      log.error('worker.exit', {
        worker: id,
        pid: worker.process.pid,
        code,
        signal,
        restart_in_ms: delayMs,
        workers_left: live.size,
      });
      setTimeout(() => {
        if (!stopping) fork(true);
      }, delayMs).unref();
    });
  };
  for (let i = 0; i < deps.count; i++) fork(false);

  const each = <T>(f: (l: Live) => Promise<T>): Promise<T[]> =>
    Promise.all(
      [...live.values()].filter((l) => l.ready).map((l) => f(l).catch((err: Error) => ({ error: err.message }) as T)),
    );

  return {
    started,
    reload: () => each((l) => l.ipc.call('reload')),
    metrics: () => each((l) => l.ipc.call('metrics')),
    async stop(graceMs, onListenersClosed) {
      stopping = true;
      const closed: Promise<unknown>[] = [];
      const exits = [...live.values()].map(
        (l) =>
          new Promise<void>((resolve) => {
            if (l.worker.isDead()) return resolve();
            const timer = setTimeout(() => l.worker.process.kill('SIGKILL'), graceMs + 10_000);
            l.worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            // answered once the worker closed its listeners (cluster's own close message goes first
            // on the same channel: the shared socket is closed when the last worker's arrives); the
            // worker then drains and exits by itself
            closed.push(l.ipc.call('stop').catch(() => l.worker.process.kill('SIGTERM')));
          }),
      );
      await Promise.all(closed);
      onListenersClosed?.();
      await Promise.all(exits);
    },
    get connections() {
      return limits.size;
    },
    firstReady: () => firstInfo,
    pids: () => [...live.values()].map((l) => l.worker.process.pid ?? -1),
  };
}
