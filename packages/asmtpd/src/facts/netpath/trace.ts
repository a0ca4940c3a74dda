/**
 * trace.ts — NetPath: the route to a client, measured with TTL-limited ICMP echo requests
 * (spec asmtpd.md §3 NetPath, NetPathMaxHops; §4 CLIENT_NETHOPS, CLIENT_NETPATH; docs/facts.md
 * "Route (NetPath)"). Needs CAP_NET_RAW.
 *
 *   traceRoute(ip, {maxHops, timeoutMs}) -> Promise<RouteFact {hops, path}>
 *   traceRouteDetail(ip, options, network?) -> Promise<TraceResult>   the same with `reached`
 *     and round-trip times (asmtpd --netpath, tests with a fake network)
 *   TraceError {code: 'bad-address' | 'permission' | 'send' | 'no-answer' | 'socket'}
 *
 * Probes: ICMP echo requests (ICMPv6 for IPv6), one per TTL 1..maxHops, all sent at once
 * (mtr-style), on a raw socket that also reads the answers. Why echo requests: one raw ICMP
 * socket both sends them and receives every answer (time exceeded from the routers, the echo reply
 * from the destination), the id/seq fields come back verbatim in both, and the destination answers
 * whatever ports it has open — a mail client usually listens on none, so UDP or TCP probes would
 * need it to send port unreachable / RST, which firewalls drop more often than echo replies. All
 * probes of a trace have the same ICMP id and checksum (packets.ts), so per-flow load balancing
 * keeps them on one path.
 *
 * Matching: a reply belongs to this trace if it carries its ICMP id (unique among the process's
 * traces, raw-icmp.ts), a sequence number it sent, and — when present in the quote — its random
 * nonce and its destination. seq = round << 8 | ttl.
 *
 * Result: the destination "answered" at the smallest TTL whose probe got an echo reply or a
 * destination unreachable (unreachable from a router also ends the route there). hops = that TTL
 * (the destination itself counts: a client behind two routers is 3 hops; the local host or a
 * neighbour on the link is 1). path[i] = who answered the probe with TTL i+1, `*` for a silent hop;
 * the last element is the destination's address when it was reached. When nothing ended the route
 * (the destination or a firewall before it stays silent): hops = the largest TTL that got any
 * answer and the path stops there, with reached = false. No answer at all: TraceError 'no-answer'.
 *
 * Timing: the whole trace ends by timeoutMs. Probes still unanswered are sent again (a second and
 * third round) at R and 2R, R = timeoutMs / 4 clamped to 100..1000 ms (routers rate-limit their
 * ICMP errors, Linux to one a second per peer after a burst of 6). The trace ends early once the
 * route ended and every TTL before the end answered (or every TTL up to maxHops answered: the route
 * is longer), or, once the route ended, when the last round
 * has had time to answer: 2 × the slowest answer so far after it, at least 300 ms, at most R.
 */
import { randomInt } from 'node:crypto';
import type { RouteFact } from '../client-facts.js';
import { buildEchoRequest, normalizeTarget, type IcmpReply, type ReplyKind } from './packets.js';
import { rawProbeNetwork, type ProbeNetwork, type ProbeSession } from './raw-icmp.js';

export interface TraceOptions {
  maxHops: number;
  timeoutMs: number;
}

export interface HopAnswer {
  ttl: number;
  from: string;
  kind: ReplyKind;
  rttMs: number;
}

export interface TraceResult extends RouteFact {
  /** the destination answered (echo reply, or unreachable sent by the destination itself) */
  reached: boolean;
  /** the answer of each TTL 1..hops; null for a silent hop */
  answers: (HopAnswer | null)[];
  elapsedMs: number;
}

export type TraceErrorCode = 'bad-address' | 'permission' | 'send' | 'no-answer' | 'socket';

export class TraceError extends Error {
  constructor(
    readonly code: TraceErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TraceError';
  }
}

/** The TTL limit of a probe: IP's TTL field is 8 bits. */
export const MAX_TTL = 255;
export const DEFAULT_TRACE_TIMEOUT_MS = 5000;
const ROUNDS = 3;

export async function traceRoute(ip: string, o: TraceOptions): Promise<RouteFact> {
  const r = await traceRouteDetail(ip, o);
  return { hops: r.hops, path: r.path };
}

export function traceRouteDetail(
  ip: string,
  o: TraceOptions,
  network: ProbeNetwork = rawProbeNetwork(),
  now: () => number = () => performance.now(),
): Promise<TraceResult> {
  const target = normalizeTarget(ip);
  if (!target) return Promise.reject(new TraceError('bad-address', `not an IP address: ${JSON.stringify(ip)}`));
  const sendTo = target.zone ? `${target.address}%${target.zone}` : target.address;
  const maxHops = Math.max(1, Math.min(MAX_TTL, Math.floor(o.maxHops)));
  const timeoutMs = Math.max(1, o.timeoutMs);
  const roundGap = Math.max(100, Math.min(1000, timeoutMs / 4));
  const nonce = randomInt(0x10000);

  return new Promise<TraceResult>((resolve, reject) => {
    const start = now();
    const answers = new Map<number, HopAnswer>();
    const sentAt = new Map<number, number>(); // seq → time
    let end: number | null = null; // smallest TTL that ended the route
    let round = 0;
    let lastRoundAt = start;
    let slowest = 0;
    let finished = false;
    const timers = new Set<NodeJS.Timeout>();
    let session: ProbeSession | null = null;

    const later = (ms: number, f: () => void): void => {
      const t = setTimeout(
        () => {
          timers.delete(t);
          f();
        },
        Math.max(0, ms),
      );
      timers.add(t);
    };

    const finish = (err: TraceError | null): void => {
      if (finished) return;
      finished = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      session?.close();
      if (err) return reject(err);
      const last = end ?? Math.max(0, ...answers.keys());
      if (last === 0)
        return reject(
          new TraceError(
            'no-answer',
            `no answer from ${target.address} or any router within ${maxHops} hops and ${timeoutMs} ms`,
          ),
        );
      const hops: (HopAnswer | null)[] = [];
      for (let ttl = 1; ttl <= last; ttl++) hops.push(answers.get(ttl) ?? null);
      const final = answers.get(last);
      const reached =
        end !== null && final !== undefined && (final.kind === 'echo-reply' || final.from === target.address);
      resolve({
        hops: last,
        path: hops.map((h) => h?.from ?? '*'),
        reached,
        answers: hops,
        elapsedMs: Math.round(now() - start),
      });
    };

    /** nothing more to learn: every TTL before the end answered (or every TTL, when nothing ended the route) */
    const complete = (): boolean => {
      const top = end === null ? maxHops : end - 1;
      for (let ttl = 1; ttl <= top; ttl++) if (!answers.has(ttl)) return false;
      return true;
    };

    const onReply = (r: IcmpReply): void => {
      if (finished) return;
      const sent = sentAt.get(r.seq);
      if (sent === undefined) return;
      if (r.nonce !== null && r.nonce !== nonce) return;
      if (r.target !== null && r.target !== target.address) return;
      const ttl = r.seq & 0xff;
      const rttMs = now() - sent;
      slowest = Math.max(slowest, rttMs);
      const terminal = r.kind !== 'time-exceeded';
      const known = answers.get(ttl);
      if (!known || (terminal && known.kind === 'time-exceeded'))
        answers.set(ttl, { ttl, from: r.from, kind: r.kind, rttMs: Math.round(rttMs * 10) / 10 });
      if (terminal && (end === null || ttl < end)) end = ttl;
      if (complete()) finish(null);
      else if (end !== null && round === ROUNDS - 1) settleAfterLastRound();
    };

    let settling = false;
    const settleAfterLastRound = (): void => {
      if (settling) return;
      settling = true;
      later(lastRoundAt + Math.min(roundGap, Math.max(300, 2 * slowest)) - now(), () => {
        if (end !== null) finish(null);
      });
    };

    const sendRound = (): void => {
      if (finished || !session) return;
      const top = end === null ? maxHops : end - 1;
      const s = session;
      lastRoundAt = now();
      for (let ttl = 1; ttl <= top; ttl++) {
        if (answers.has(ttl)) continue;
        const seq = (round << 8) | ttl;
        sentAt.set(seq, now());
        s.send(sendTo, ttl, buildEchoRequest(target.family, { id: s.id, seq, nonce })).catch((err: Error) => {
          // a refused send (no route to the host, a local firewall) fails the trace unless
          // something already answered
          if (answers.size === 0) finish(new TraceError('send', `cannot send to ${target.address}: ${err.message}`));
        });
      }
      if (round < ROUNDS - 1)
        later(roundGap * (round + 1) - (now() - start), () => {
          round++;
          sendRound();
        });
      else if (end !== null) settleAfterLastRound();
    };

    try {
      session = network.open(target.family, onReply, (err) =>
        finish(new TraceError('socket', `raw socket failed: ${err.message}`)),
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const code: TraceErrorCode = /not permitted|permission denied|EPERM|EACCES/i.test(message)
        ? 'permission'
        : 'socket';
      return reject(
        new TraceError(
          code,
          `cannot open a raw ICMP${target.family === 6 ? 'v6' : ''} socket: ${message}${code === 'permission' ? ' (needs CAP_NET_RAW)' : ''}`,
        ),
      );
    }
    later(timeoutMs, () => finish(null));
    sendRound();
  });
}
