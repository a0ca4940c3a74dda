/**
 * Faults (issue 7, item 4): SIGHUP and SIGTERM while many sessions are in the middle of DATA.
 *
 * SIGHUP: 40 slow clients (starting 50 ms apart; each message sent in 20 pieces 100 ms apart, two
 * messages per session)
 * while the configuration is rewritten and reloaded every 250 ms, the RelayHost alternating
 * between two downstreams (so the relay itself is swapped under the sessions) — every message
 * gets 250 and is at exactly one downstream, byte for byte.
 *
 * SIGTERM: 30 clients in the middle of a slow DATA, 5 idle after EHLO, 3 that stop sending in the
 * middle of their data. The daemon stops listening at once; each session in DATA that completes
 * within the grace (30 s) gets its 250 and its message is delivered (its next command, QUIT
 * included, gets smtp-server's `421 4.4.2 Server shutting down` and the connection is closed); the
 * idle and the stalled ones get a 421 at the end of the grace before the connection closes; not one
 * session is closed without a reply; the daemon exits 0. (~35 s: the stalled sessions wait for the
 * whole grace.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient, dotStuff } from '../support/smtp-client.js';
import { bodySha256, type RecordEntry } from '../support/faults-sink.js';
import { compare, faultMessage, runLoad } from '../support/faults-load.js';

let sinkA: Sink;
let sinkB: Sink;

before(async () => {
  [sinkA, sinkB] = await Promise.all([startSink(), startSink()]);
});
after(async () => {
  await sinkA?.close();
  await sinkB?.close();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function entriesOf(...sinks: Sink[]): RecordEntry[] {
  return sinks.flatMap((s) =>
    s.messages.map((m) => {
      const head = m.data.subarray(0, Math.max(0, m.data.indexOf('\r\n\r\n'))).toString('latin1');
      return {
        token: /^X-Fault-Token: *(\S+)/im.exec(head)?.[1] ?? '',
        from: m.from,
        to: m.to,
        bodySha256: bodySha256(m.data),
        size: m.data.length,
      };
    }),
  );
}

const conf = (relayPort: number, maxRcpts: number): string =>
  [`RelayHost 127.0.0.1:${relayPort}`, 'RelayNet 127.0.0.1/32', 'MaxClientsPerIP 200', `MaxRcpts ${maxRcpts}`].join(
    '\n',
  );

test('SIGHUP every 250 ms (RelayHost alternating) while 40 slow clients are in DATA: every message 250, delivered once', async (t) => {
  const d = await startDaemon({ conf: conf(sinkA.port, 100) });
  try {
    const reloads = (): number => d.logs.filter((l) => l.event === 'daemon.reload').length;
    let running = true;
    let sent = 0;
    const hupper = (async () => {
      while (running) {
        await sleep(250);
        if (!running) break;
        sent++;
        d.writeConf(conf(sent % 2 ? sinkB.port : sinkA.port, 100 + sent));
        d.signal('SIGHUP');
      }
    })();
    let result;
    try {
      result = await runLoad({
        port: d.port,
        count: 80,
        concurrency: 40,
        perSession: 2,
        to: 'r@elsewhere.test',
        maxAttempts: 1,
        sizes: [4000, 20_000],
        slowBody: { chunks: 20, pauseMs: 100 },
        staggerMs: 50,
        tokenPrefix: 'HUP',
      });
    } finally {
      running = false;
      await hupper;
    }
    await d.waitLog(() => reloads() >= sent, 5000);
    const cmp = compare(result, entriesOf(sinkA, sinkB));
    t.diagnostic(
      `${cmp.messages} messages in ${result.ms} ms, ${sent} reloads; at A ${sinkA.messages.length}, at B ${sinkB.messages.length}; attempts ${JSON.stringify(cmp.attempts)}`,
    );
    assert.deepEqual(cmp.attempts, { '250': 80, '4xx': 0, '5xx': 0, 'no-reply': 0 }, JSON.stringify(cmp.deferrals));
    assert.deepEqual(cmp.lost, []);
    assert.deepEqual(cmp.corrupt, []);
    assert.equal(cmp.duplicates, 0);
    assert.ok(sent >= 8, `${sent} reloads`);
    assert.ok(sinkA.messages.length > 0 && sinkB.messages.length > 0, 'both relays were used');
    assert.deepEqual(
      d.logs.filter((l) => l.event === 'daemon.error' || l.event === 'daemon.reload_failed'),
      [],
    );
  } finally {
    await d.stop();
  }
});

interface Outcome {
  kind: 'slow' | 'idle' | 'stalled';
  /** every reply line after the one to DATA (or after EHLO for idle sessions) */
  replies: string[];
  closedWithoutReply: boolean;
  token?: string;
  quit?: string;
  /** the server closed the connection after its reply to QUIT */
  closedAfterQuit?: boolean;
}

test('SIGTERM with 30 sessions in DATA, 5 idle, 3 stalled: the DATA ones finish with 250, the others get 421, none without a reply', async (t) => {
  const d = await startDaemon({ conf: conf(sinkA.port, 100) });
  const exited = new Promise<number | null>((r) => d.proc.once('exit', (code) => r(code)));
  const deliveredBefore = sinkA.messages.length;
  let inData = 0;
  const slow = async (i: number): Promise<Outcome> => {
    const token = `TERM-${i}`;
    const c = await SmtpClient.connect(d.port);
    const o: Outcome = { kind: 'slow', replies: [], closedWithoutReply: false, token };
    try {
      await c.greeting();
      await c.cmd('EHLO slow.client.test');
      await c.cmd('MAIL FROM:<s@client.test>');
      await c.cmd('RCPT TO:<r@elsewhere.test>');
      assert.match((await c.cmd('DATA')).last, /^354 /);
      inData++;
      const data = Buffer.concat([dotStuff(faultMessage(token, 8000)), Buffer.from('.\r\n')]);
      const piece = Math.ceil(data.length / 30);
      for (let p = 0; p < data.length; p += piece) {
        c.write(data.subarray(p, p + piece));
        await sleep(100);
      }
      o.replies.push((await c.reply(40_000)).last);
      if (o.replies[0]!.startsWith('250')) {
        o.quit = (await c.cmd('QUIT').catch(() => ({ last: 'closed' }))).last;
        o.closedAfterQuit = await c.waitClosed(2000);
      }
    } catch {
      o.closedWithoutReply = true;
    } finally {
      c.close();
    }
    return o;
  };
  const waiting = async (kind: 'idle' | 'stalled'): Promise<Outcome> => {
    const c = await SmtpClient.connect(d.port);
    const o: Outcome = { kind, replies: [], closedWithoutReply: false };
    await c.greeting();
    await c.cmd('EHLO waiting.client.test');
    if (kind === 'stalled') {
      await c.cmd('MAIL FROM:<s@client.test>');
      await c.cmd('RCPT TO:<r@elsewhere.test>');
      await c.cmd('DATA');
      c.write('Subject: stalled\r\n\r\nhalf a message\r\n');
    }
    try {
      // a client that waits: the next thing it hears must be a reply, before the close
      o.replies.push((await c.reply(45_000)).last);
    } catch {
      o.closedWithoutReply = true;
    }
    await c.waitClosed(5000);
    c.close();
    return o;
  };
  const sessions = [
    ...Array.from({ length: 30 }, (_, i) => slow(i)),
    ...Array.from({ length: 5 }, () => waiting('idle')),
    ...Array.from({ length: 3 }, () => waiting('stalled')),
  ];
  // SIGTERM once every slow session is well into its data
  const t0 = Date.now();
  while (inData < 30 && Date.now() - t0 < 10_000) await sleep(20);
  await sleep(500);
  const termAt = Date.now();
  d.signal('SIGTERM');
  await d.waitLog((l) => l.event === 'daemon.stop');
  // no new sessions: the listener is closed
  const refused = await SmtpClient.connect(d.port).then(
    (c) => (c.close(), false),
    () => true,
  );
  const outcomes = await Promise.all(sessions);
  const code = await exited;
  const stoppedMs = Date.now() - termAt;
  const summary: Record<string, number> = {};
  for (const o of outcomes) {
    const key = `${o.kind}: ${o.closedWithoutReply ? 'closed without a reply' : o.replies.join(' / ').replace(/queued as \w+/, 'queued as ID')}${o.quit ? ` then ${o.quit}` : ''}`;
    summary[key] = (summary[key] ?? 0) + 1;
  }
  t.diagnostic(`SIGTERM → exit ${code} after ${stoppedMs} ms; ${JSON.stringify(summary)}`);
  assert.ok(refused, 'new connections are refused once SIGTERM arrived');
  assert.deepEqual(
    outcomes.filter((o) => o.closedWithoutReply),
    [],
    'no session closed without a reply',
  );
  for (const o of outcomes) {
    if (o.kind === 'slow') {
      assert.match(o.replies[0]!, /^250 2\.0\.0 /, `${o.token}: the message in DATA finished within the grace`);
      assert.match(o.quit ?? '', /^(221|421) /);
      assert.equal(o.closedAfterQuit, true, `${o.token}: the server closed the connection after its ${o.quit}`);
    } else assert.match(o.replies[0]!, /^421 /, `${o.kind}: 421 before the close`);
  }
  const tokens = entriesOf(sinkA).map((e) => e.token);
  for (let i = 0; i < 30; i++)
    assert.equal(tokens.filter((x) => x === `TERM-${i}`).length, 1, `TERM-${i} delivered once`);
  assert.equal(sinkA.messages.length - deliveredBefore, 30, 'nothing else delivered (the stalled halves are not)');
  assert.equal(code, 0);
  assert.ok(stoppedMs < 30_000 + 5000, `stopped ${stoppedMs} ms after SIGTERM (grace 30 s)`);
  await d.stop();
});
