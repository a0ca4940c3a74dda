/**
 * connections.ts — per-connection bookkeeping outside smtp-server: limits (MaxClients,
 * MaxClientsPerIP), the command deadline (SMTPTimeout between a reply and the next command,
 * DataTimeout for the whole DATA transfer), and the MaxErrors counter.
 *
 * The limits are counted here in one process (Workers 1), or by the primary across all workers
 * (Workers N: a SharedLimits from daemon/worker-link.ts, one IPC round trip per connection);
 * then admit() answers asynchronously, and a connection that closed while asking gives its place
 * back at once.
 */
import type { Socket } from 'node:net';
import type { ProxyOrigin, SmtpConnectionHandle } from './boundary.js';
import type { Session } from './session.js';
import type { ReplyCommand } from '../metrics/metrics.js';

export type AdmitVerdict = 'ok' | 'max-clients' | 'max-per-ip';

/** MaxClients and MaxClientsPerIP counted outside this process (across the workers). */
export interface SharedLimits {
  admit(ip: string, maxClients: number, maxPerIp: number): Promise<AdmitVerdict>;
  release(ip: string): void;
}

export interface ConnState {
  id: string;
  conn: SmtpConnectionHandle;
  socket: Socket | null;
  /** the client shut down its sending side (TCP half-close): replies still go out */
  halfClosed: boolean;
  /** the client's socket is closed or reset: nothing we write reaches it */
  gone: boolean;
  session: Session | null;
  /** the load balancer whose PROXY header named the client (ProxyProtocol); null: the peer is the client */
  proxy: ProxyOrigin | null;
  ip: string;
  counted: boolean;
  timer: NodeJS.Timeout | null;
  errors: number;
  closing: boolean;
  /** what the next reply answers (metrics): the banner, the last command, the message after 354 */
  answering: ReplyCommand;
}

export class ConnectionTable {
  private readonly byId = new Map<string, ConnState>();
  private readonly perIp = new Map<string, number>();
  private active = 0;

  constructor(private readonly shared: SharedLimits | null = null) {}

  add(id: string, conn: SmtpConnectionHandle): ConnState {
    const st: ConnState = {
      id,
      conn,
      socket: null,
      halfClosed: false,
      gone: false,
      session: null,
      proxy: null,
      ip: '',
      counted: false,
      timer: null,
      errors: 0,
      closing: false,
      answering: 'connect',
    };
    this.byId.set(id, st);
    return st;
  }
  get(id: string): ConnState | undefined {
    return this.byId.get(id);
  }
  /** Count a connection against the limits; returns which limit refuses it, if any. */
  admit(st: ConnState, ip: string, maxClients: number, maxPerIp: number): AdmitVerdict | Promise<AdmitVerdict> {
    if (this.shared) return this.admitShared(this.shared, st, ip, maxClients, maxPerIp);
    if (this.active >= maxClients) return 'max-clients';
    const n = this.perIp.get(ip) ?? 0;
    if (n >= maxPerIp) return 'max-per-ip';
    this.perIp.set(ip, n + 1);
    this.active++;
    st.ip = ip;
    st.counted = true;
    return 'ok';
  }
  private async admitShared(
    shared: SharedLimits,
    st: ConnState,
    ip: string,
    maxClients: number,
    maxPerIp: number,
  ): Promise<AdmitVerdict> {
    let verdict: AdmitVerdict;
    try {
      verdict = await shared.admit(ip, maxClients, maxPerIp);
    } catch {
      // the primary is gone (this worker is stopping): serve the connection uncounted
      return 'ok';
    }
    if (verdict !== 'ok') return verdict;
    // closed while we asked: its place goes back
    if (this.byId.get(st.id) !== st) {
      shared.release(ip);
      return verdict;
    }
    this.active++;
    st.ip = ip;
    st.counted = true;
    return verdict;
  }
  remove(id: string): ConnState | undefined {
    const st = this.byId.get(id);
    if (!st) return undefined;
    this.byId.delete(id);
    this.clearDeadline(st);
    if (st.counted) {
      this.active--;
      if (this.shared) {
        this.shared.release(st.ip);
        return st;
      }
      const n = (this.perIp.get(st.ip) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(st.ip);
      else this.perIp.set(st.ip, n);
    }
    return st;
  }
  get size(): number {
    return this.active;
  }
  all(): IterableIterator<ConnState> {
    return this.byId.values();
  }
  armDeadline(st: ConnState, ms: number, onExpire: () => void): void {
    this.clearDeadline(st);
    if (st.closing) return;
    st.timer = setTimeout(onExpire, ms);
    st.timer.unref();
  }
  clearDeadline(st: ConnState): void {
    if (st.timer) clearTimeout(st.timer);
    st.timer = null;
  }
}
