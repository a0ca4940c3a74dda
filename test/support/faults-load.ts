/**
 * Load for the fault suites (issue 7, faults): many transactions from concurrent clients, each
 * message with a unique token, every reply kept per attempt; deferred (4xx) messages are tried
 * again like a real client's queue. Then the downstream's record is compared with what the
 * clients were told.
 *
 * Public:
 *   faultMessage(token, size) -> string   a message (CRLF) with `X-Fault-Token: token` and a unique
 *                                         Message-ID, a body of about `size` bytes with dot lines
 *   runLoad(o) -> LoadResult              o: { port, count, concurrency, to, from?, sizes?,
 *                                         perSession? (5), maxAttempts? (20), retryDelayMs? (50),
 *                                         tokenPrefix?, replyTimeoutMs? (30000), slowBody?: {chunks, pauseMs},
 *                                         staggerMs?, onAttempt? }
 *   compare(result, entries) -> Comparison   (see below)
 *
 * An attempt ends in one of: '250' (the final reply to the data was 250), '4xx'/'5xx' (a reply to
 * MAIL, RCPT, DATA or the data), 'no-reply' (the connection closed, or no reply in replyTimeoutMs,
 * while a reply was due). Messages are never retried after a 250 or a 5xx.
 */
import { SmtpClient, dotStuff, type SmtpReply } from './smtp-client.js';
import { bodySha256, type RecordEntry } from './faults-sink.js';

export type AttemptClass = '250' | '4xx' | '5xx' | 'no-reply';

export interface Attempt {
  cls: AttemptClass;
  /** where it ended: mail, rcpt, data (the 354), dot (the reply to the data), connect */
  stage: 'connect' | 'mail' | 'rcpt' | 'data' | 'dot';
  reply: string;
}

export interface LoadMessage {
  token: string;
  text: string;
  sha: string;
  attempts: Attempt[];
}

export interface LoadResult {
  messages: LoadMessage[];
  ms: number;
  sessions: number;
}

export interface Comparison {
  messages: number;
  /** messages the client got a 250 for (at least once) */
  acked: number;
  /** acked but not in the record: must be 0 */
  lost: string[];
  /** in the record with a body that is not the one sent: must be 0 */
  corrupt: string[];
  /** tokens in the record that no client sent: must be 0 */
  unknown: string[];
  /** record entries beyond the first for a token (taken by the downstream, but the client was not told 250 and sent it again) */
  duplicates: number;
  /** in the record although no attempt got 250 (the client would send it again later) */
  recordedNotAcked: number;
  /** never acked after maxAttempts */
  notDelivered: number;
  /** attempts by class, and 4xx replies by text (first 40 characters) */
  attempts: Record<AttemptClass, number>;
  deferrals: Record<string, number>;
  /** a 250 that came although the same message got 250 before: must be 0 (never retried after 250) */
  doubleAcked: number;
}

export function faultMessage(token: string, size: number): string {
  const head =
    `From: <load@client.test>\r\nTo: <rcpt@downstream.test>\r\nSubject: fault load ${token}\r\n` +
    `Message-ID: <${token}@client.test>\r\nX-Fault-Token: ${token}\r\n\r\n`;
  const lines: string[] = [`token ${token}`, '.a line starting with a dot', '..two dots', '.'];
  let n = head.length + 60;
  let i = 0;
  while (n < size) {
    const line = `${token} line ${i++} ${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(2)}`;
    lines.push(line);
    n += line.length + 2;
  }
  lines.push('end');
  return head + lines.join('\r\n') + '\r\n';
}

export interface LoadOptions {
  port: number;
  count: number;
  concurrency: number;
  to: string;
  from?: string;
  /** message sizes to cycle through (bytes) */
  sizes?: number[];
  perSession?: number;
  maxAttempts?: number;
  retryDelayMs?: number;
  tokenPrefix?: string;
  replyTimeoutMs?: number;
  /** send the data in `chunks` pieces with `pauseMs` between them (a slow client) */
  slowBody?: { chunks: number; pauseMs: number };
  /** worker i starts after i × staggerMs (spreads the sessions over time) */
  staggerMs?: number;
  /** called after each attempt */
  onAttempt?: (m: LoadMessage, a: Attempt) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function classOf(r: SmtpReply): AttemptClass {
  return r.code >= 200 && r.code < 300 ? '250' : r.code >= 500 ? '5xx' : '4xx';
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const started = Date.now();
  const sizes = o.sizes ?? [600, 3000, 20_000, 120_000];
  const prefix = o.tokenPrefix ?? `F${started.toString(36)}`;
  const messages: LoadMessage[] = [];
  for (let i = 0; i < o.count; i++) {
    const token = `${prefix}-${i}`;
    const text = faultMessage(token, sizes[i % sizes.length]!);
    messages.push({ token, text, sha: bodySha256(text), attempts: [] });
  }
  const queue: LoadMessage[] = [...messages];
  let inFlight = 0;
  let sessions = 0;
  const maxAttempts = o.maxAttempts ?? 20;
  const replyTimeout = o.replyTimeoutMs ?? 30_000;

  const record = (m: LoadMessage, a: Attempt): void => {
    m.attempts.push(a);
    o.onAttempt?.(m, a);
    if (a.cls === '4xx' || a.cls === 'no-reply') {
      if (m.attempts.length < maxAttempts) {
        inFlight++;
        // tried again a little later, at the back of the queue
        void sleep(o.retryDelayMs ?? 50).then(() => {
          queue.push(m);
          inFlight--;
        });
      }
    }
  };

  /** One transaction on an open session; returns false when the session is no longer usable. */
  const transact = async (c: SmtpClient, m: LoadMessage): Promise<boolean> => {
    const step = async (stage: Attempt['stage'], line: string | null, want: number): Promise<SmtpReply | null> => {
      try {
        const r = line === null ? await c.reply(replyTimeout) : (c.write(line + '\r\n'), await c.reply(replyTimeout));
        if (r.code !== want) {
          record(m, { cls: classOf(r), stage, reply: r.last });
          return null;
        }
        return r;
      } catch (err) {
        record(m, { cls: 'no-reply', stage, reply: (err as Error).message.slice(0, 80) });
        return null;
      }
    };
    if (!(await step('mail', `MAIL FROM:<${o.from ?? 'load@client.test'}>`, 250))) return !c.closed && (await reset(c));
    if (!(await step('rcpt', `RCPT TO:<${o.to}>`, 250))) return !c.closed && (await reset(c));
    if (!(await step('data', 'DATA', 354))) return !c.closed && (await reset(c));
    const data = Buffer.concat([dotStuff(m.text), Buffer.from('.\r\n')]);
    if (o.slowBody) {
      const piece = Math.ceil(data.length / o.slowBody.chunks);
      for (let p = 0; p < data.length; p += piece) {
        if (c.closed) break;
        c.write(data.subarray(p, p + piece));
        if (p + piece < data.length) await sleep(o.slowBody.pauseMs);
      }
    } else {
      c.write(data);
    }
    try {
      const r = await c.reply(replyTimeout);
      record(m, { cls: classOf(r), stage: 'dot', reply: r.last });
      return r.code !== 421 && !c.closed;
    } catch (err) {
      record(m, { cls: 'no-reply', stage: 'dot', reply: (err as Error).message.slice(0, 80) });
      return false;
    }
  };

  const reset = async (c: SmtpClient): Promise<boolean> => {
    try {
      return (await c.cmd('RSET')).code === 250;
    } catch {
      return false;
    }
  };

  const worker = async (i: number): Promise<void> => {
    if (o.staggerMs) await sleep(i * o.staggerMs);
    for (;;) {
      const first = queue.shift();
      if (!first) {
        if (inFlight === 0) return;
        await sleep(10);
        continue;
      }
      let c: SmtpClient | null = null;
      try {
        c = await SmtpClient.connect(o.port);
        sessions++;
        const g = await c.greeting();
        const e = g.code === 220 ? await c.cmd('EHLO load.client.test') : g;
        if (e.code !== 250) {
          // a refusal at connect (421 limits, shutting down) is a reply: a deferral
          record(first, { cls: classOf(e), stage: 'connect', reply: e.last });
          c.close();
          await sleep(20);
          continue;
        }
      } catch (err) {
        c?.close();
        record(first, { cls: 'no-reply', stage: 'connect', reply: (err as Error).message.slice(0, 80) });
        await sleep(20);
        continue;
      }
      if (!c) continue;
      let m: LoadMessage | undefined = first;
      for (let k = 0; m && k < (o.perSession ?? 5); k++) {
        if (!(await transact(c, m))) break;
        m = k + 1 < (o.perSession ?? 5) ? queue.shift() : undefined;
      }
      c.write('QUIT\r\n');
      c.close();
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => worker(i)));
  return { messages, ms: Date.now() - started, sessions };
}

export function compare(result: LoadResult, entries: RecordEntry[]): Comparison {
  const byToken = new Map(result.messages.map((m) => [m.token, m]));
  const seen = new Map<string, number>();
  const corrupt: string[] = [];
  const unknown: string[] = [];
  for (const e of entries) {
    const m = byToken.get(e.token);
    if (!m) {
      unknown.push(e.token);
      continue;
    }
    seen.set(e.token, (seen.get(e.token) ?? 0) + 1);
    if (e.bodySha256 !== m.sha) corrupt.push(e.token);
  }
  const attempts: Record<AttemptClass, number> = { '250': 0, '4xx': 0, '5xx': 0, 'no-reply': 0 };
  const deferrals: Record<string, number> = {};
  const lost: string[] = [];
  let acked = 0;
  let duplicates = 0;
  let recordedNotAcked = 0;
  let notDelivered = 0;
  let doubleAcked = 0;
  for (const m of result.messages) {
    let oks = 0;
    for (const a of m.attempts) {
      attempts[a.cls]++;
      if (a.cls === '250') oks++;
      if (a.cls === '4xx' || a.cls === 'no-reply') {
        const key = `${a.stage}: ${a.reply.slice(0, 40)}`;
        deferrals[key] = (deferrals[key] ?? 0) + 1;
      }
    }
    const n = seen.get(m.token) ?? 0;
    if (oks > 0) acked++;
    if (oks > 1) doubleAcked += oks - 1;
    if (oks > 0 && n === 0) lost.push(m.token);
    if (oks === 0 && n > 0) recordedNotAcked++;
    if (oks === 0) notDelivered++;
    if (n > 1) duplicates += n - 1;
  }
  return {
    messages: result.messages.length,
    acked,
    lost,
    corrupt,
    unknown,
    duplicates,
    recordedNotAcked,
    notDelivered,
    attempts,
    deferrals,
    doubleAcked,
  };
}
