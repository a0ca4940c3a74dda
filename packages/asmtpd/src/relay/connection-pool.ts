/**
 * relay/connection-pool — a few downstream sessions, reused for several messages.
 *
 * Public:
 *   ConnectionPool(open, limits)   open: () => Promise<{kind:'open', connection} | {kind:'failed', failure}>
 *   pool.acquire({ fresh, waitMs }) an idle session (reused: true), or a new one while fewer than
 *                                  maxConnections are open, or wait for one to be released (at most
 *                                  waitMs, then the `busy` failure given to the constructor).
 *                                  fresh: true never hands out an idle session (the retry after a stale one)
 *   pool.tryAcquire()              the same without waiting: { kind: 'busy' } when all are in use
 *                                  (a proxy transaction then goes on without a RCPT-time verdict)
 *   pool.release(conn, reusable)   back to the idle list (closed after idleMs, or after
 *                                  maxMessagesPerConnection messages), or closed
 *   pool.close()                   QUIT the idle sessions and wait for their sockets to close
 *   DEFAULT_POOL_LIMITS            maxConnections 20 (RelayConnections), maxMessagesPerConnection 100, idleMs 5000
 *
 * Notes: a session the downstream closed while idle is noticed (alive = false) and dropped when it
 * would be handed out; the race where it closes just as we use it is the relay's stale-retry.
 * Waiters are served in order; an open that fails wakes the next waiter so it can try in turn.
 */

export interface Poolable {
  readonly alive: boolean;
  messagesSent: number;
  quit(): void;
  destroy(): void;
  ended(): Promise<void>;
}

export interface PoolLimits {
  maxConnections: number;
  maxMessagesPerConnection: number;
  /** an idle session is closed (QUIT) after this long */
  idleMs: number;
}

export const DEFAULT_POOL_LIMITS: PoolLimits = { maxConnections: 20, maxMessagesPerConnection: 100, idleMs: 5000 };

export type Acquired<C, F> = { kind: 'open'; connection: C; reused: boolean } | { kind: 'failed'; failure: F };

interface IdleEntry<C> {
  connection: C;
  timer: NodeJS.Timeout;
}

export class ConnectionPool<C extends Poolable, F> {
  private readonly idle: IdleEntry<C>[] = [];
  private readonly waiters: (() => void)[] = [];
  private readonly closing: Promise<void>[] = [];
  private openCount = 0;
  private closed = false;

  constructor(
    private readonly open: () => Promise<{ kind: 'open'; connection: C } | { kind: 'failed'; failure: F }>,
    private readonly limits: PoolLimits,
    private readonly closedFailure: F,
    private readonly busyFailure: F = closedFailure,
  ) {}

  /** An idle or new session without waiting; busy when maxConnections are in use. */
  async tryAcquire(): Promise<Acquired<C, F> | { kind: 'busy' }> {
    if (this.closed) return { kind: 'failed', failure: this.closedFailure };
    this.dropDeadIdle();
    if (this.idle.length === 0 && this.openCount >= this.limits.maxConnections) return { kind: 'busy' };
    return this.acquire({ fresh: false });
  }

  /** sessions open or being opened (idle + busy) */
  get size(): number {
    return this.openCount;
  }

  async acquire(opts: { fresh: boolean; waitMs?: number } = { fresh: false }): Promise<Acquired<C, F>> {
    const deadline = opts.waitMs === undefined ? Infinity : Date.now() + opts.waitMs;
    for (;;) {
      if (this.closed) return { kind: 'failed', failure: this.closedFailure };
      this.dropDeadIdle();
      if (!opts.fresh) {
        const entry = this.idle.pop();
        if (entry) {
          clearTimeout(entry.timer);
          return { kind: 'open', connection: entry.connection, reused: true };
        }
      } else if (this.openCount >= this.limits.maxConnections && this.idle.length > 0) {
        this.discard(this.idle.shift()!); // make room for the fresh one
      }
      if (this.openCount < this.limits.maxConnections) {
        this.openCount++;
        const opened = await this.open();
        if (opened.kind === 'failed') {
          this.openCount--;
          this.wakeOne();
          return opened;
        }
        return { kind: 'open', connection: opened.connection, reused: false };
      }
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'failed', failure: this.busyFailure };
      await new Promise<void>((resolve) => {
        const timer = Number.isFinite(left)
          ? setTimeout(() => {
              const i = this.waiters.indexOf(wake);
              if (i >= 0) this.waiters.splice(i, 1);
              resolve();
            }, left)
          : null;
        const wake = (): void => {
          if (timer) clearTimeout(timer);
          resolve();
        };
        this.waiters.push(wake);
      });
    }
  }

  release(connection: C, reusable: boolean): void {
    const keep =
      reusable && !this.closed && connection.alive && connection.messagesSent < this.limits.maxMessagesPerConnection;
    if (keep) {
      const timer = setTimeout(() => {
        const i = this.idle.findIndex((e) => e.connection === connection);
        if (i >= 0) this.discard(this.idle.splice(i, 1)[0]!);
      }, this.limits.idleMs);
      timer.unref();
      this.idle.push({ connection, timer });
    } else {
      this.openCount--;
      this.finish(connection);
    }
    this.wakeOne();
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.idle.length > 0) this.discard(this.idle.pop()!);
    while (this.waiters.length > 0) this.waiters.shift()!();
    const bounded = Promise.all(this.closing).then(() => undefined);
    await Promise.race([bounded, new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())]);
  }

  private dropDeadIdle(): void {
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const entry = this.idle[i]!;
      if (!entry.connection.alive) {
        this.idle.splice(i, 1);
        this.discard(entry);
      }
    }
  }

  private discard(entry: IdleEntry<C>): void {
    clearTimeout(entry.timer);
    this.openCount--;
    this.finish(entry.connection);
  }

  private finish(connection: C): void {
    if (connection.alive) connection.quit();
    else connection.destroy();
    const ended = connection.ended();
    this.closing.push(ended);
    void ended.then(() => {
      const i = this.closing.indexOf(ended);
      if (i >= 0) this.closing.splice(i, 1);
    });
  }

  private wakeOne(): void {
    this.waiters.shift()?.();
  }
}
