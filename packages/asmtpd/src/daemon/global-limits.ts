/**
 * global-limits.ts — the primary's counts of the limits that hold across all workers (Workers N):
 * MaxClients and MaxClientsPerIP, and the AUTH failures per client IP (AuthMaxFailures).
 *
 *   new GlobalLimits()
 *     .admit(worker, ip, maxClients, maxPerIp) -> 'ok' | 'max-clients' | 'max-per-ip'
 *     .release(worker, ip)         a counted connection of that worker closed
 *     .forget(worker)              the worker died: its connections died with it
 *     .size                        connections counted over all workers
 *     .authFailures                the daemon's one AuthFailures (smtp/auth-limiter.ts)
 *
 * Each worker asks over IPC (daemon/worker-link.ts, daemon/primary.ts): one round trip per
 * connection at connect, a one-way message at close. The counts are kept per worker too, so that a
 * worker that dies (kill -9) does not hold places it can never give back.
 */
import { AuthFailures } from '../smtp/auth-limiter.js';
import type { AdmitVerdict } from '../smtp/connections.js';

export class GlobalLimits {
  private readonly perIp = new Map<string, number>();
  private readonly byWorker = new Map<number, Map<string, number>>();
  private active = 0;
  readonly authFailures = new AuthFailures();

  admit(worker: number, ip: string, maxClients: number, maxPerIp: number): AdmitVerdict {
    if (this.active >= maxClients) return 'max-clients';
    const n = this.perIp.get(ip) ?? 0;
    if (n >= maxPerIp) return 'max-per-ip';
    this.perIp.set(ip, n + 1);
    this.active++;
    let mine = this.byWorker.get(worker);
    if (!mine) this.byWorker.set(worker, (mine = new Map()));
    mine.set(ip, (mine.get(ip) ?? 0) + 1);
    return 'ok';
  }

  release(worker: number, ip: string): void {
    const mine = this.byWorker.get(worker);
    const m = mine?.get(ip) ?? 0;
    if (!mine || m <= 0) return;
    if (m === 1) mine.delete(ip);
    else mine.set(ip, m - 1);
    this.drop(ip, 1);
  }

  forget(worker: number): void {
    const mine = this.byWorker.get(worker);
    if (!mine) return;
    this.byWorker.delete(worker);
    for (const [ip, m] of mine) this.drop(ip, m);
  }

  get size(): number {
    return this.active;
  }

  private drop(ip: string, k: number): void {
    this.active -= k;
    const n = (this.perIp.get(ip) ?? k) - k;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
  }
}
