/**
 * Slow drip under load, CI size (issue 7, item 5). limits.test.ts shows that one client dripping
 * a byte every 300 ms is cut by SMTPTimeout; here 50 drippers at once, a byte every 700 ms (each
 * byte sooner than SMTPTimeout 2s, a command far later), plus 5 clients dripping their message
 * after 354 (DataTimeout 3s), while normal clients keep sending mail through the same daemon:
 *  - every dripper gets `421 4.4.2` on time: SMTPTimeout (or DataTimeout) after our last reply to
 *    it, not later because of the others, and its connection is closed;
 *  - a dripper that sent EHLO promptly is cut SMTPTimeout after the EHLO reply (the deadline is
 *    per command, re-armed by each reply);
 *  - normal clients, one transaction after another, are all served (250, delivered) meanwhile,
 *    and a slow but legitimate client (1.5 s before each command, under SMTPTimeout) is not cut.
 * Latencies are reported (t.diagnostic) and only bounded loosely; the long run with thousands of
 * drippers is bench/load/drip.mjs (docs/reliability.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from '../support/daemon.js';
import { startSink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';

const SMTP_TIMEOUT_MS = 2000;
const DATA_TIMEOUT_MS = 3000;
const DRIP_EVERY_MS = 700;
const COMMAND_DRIPPERS = 40;
const EHLO_DRIPPERS = 10;
const DATA_DRIPPERS = 5;
const TIMEOUT_REPLY = '421 4.4.2 timeout exceeded, closing connection';
const DATA_TIMEOUT_REPLY = '421 4.4.2 timeout while receiving the message, closing connection';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Cut {
  kind: 'command' | 'after-ehlo' | 'data';
  /** ms from the step that armed the deadline (connect, EHLO, DATA) to the 421 */
  ms: number;
  reply: string;
  bytes: number;
  closed: boolean;
}

/**
 * Connect, read the banner (and optionally EHLO / open a message), then drip one byte at a time.
 * The time to the 421 is taken from just before the step that armed the daemon's deadline (the
 * connect, the EHLO, the DATA command), so it is never shorter than the timeout on a busy machine.
 */
async function dripper(port: number, source: string, kind: Cut['kind']): Promise<Cut> {
  let from = Date.now();
  const c = await SmtpClient.connect(port, '127.0.0.1', source);
  await c.greeting();
  let text = 'NOOP\r\n';
  if (kind === 'after-ehlo') {
    from = Date.now();
    await c.cmd('EHLO dripper.test');
    text = 'MAIL FROM:<drip@client.test>\r\n';
  } else if (kind === 'data') {
    await c.cmd('EHLO dripper.test');
    await c.cmd('MAIL FROM:<drip@client.test>');
    await c.cmd('RCPT TO:<someone@relay.test>');
    from = Date.now();
    const d = await c.cmd('DATA');
    assert.equal(d.code, 354);
    text = 'Subject: drip\r\n\r\n' + 'x'.repeat(200) + '\r\n.\r\n';
  }
  let bytes = 0;
  const timer = setInterval(
    () => {
      if (c.closed) return;
      c.write(text[bytes % text.length]!);
      bytes++;
    },
    kind === 'data' ? 300 : DRIP_EVERY_MS,
  );
  try {
    const r = await c.reply(15_000);
    const ms = Date.now() - from;
    return { kind, ms, reply: r.last, bytes, closed: await c.waitClosed(3000) };
  } finally {
    clearInterval(timer);
    c.close();
  }
}

const pct = (v: number[], p: number): number =>
  [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)] ?? NaN;

test(
  `${COMMAND_DRIPPERS + EHLO_DRIPPERS + DATA_DRIPPERS} slow drippers are cut on time while normal clients are served`,
  { timeout: 90_000 },
  async (t) => {
    const sink = await startSink();
    const d = await startDaemon({
      conf: [
        `SMTPTimeout ${SMTP_TIMEOUT_MS / 1000}s`,
        `DataTimeout ${DATA_TIMEOUT_MS / 1000}s`,
        'MaxClients 200',
        'MaxClientsPerIP 100',
        'RelayNet 127.0.0.0/8',
        `RelayHost 127.0.0.1:${sink.port}`,
      ].join('\n'),
    });
    const normal = async (tag: string): Promise<{ ms: number; last: string }> => {
      const started = Date.now();
      const c = await SmtpClient.connect(d.port);
      c.socket.setNoDelay(true); // the body and the final dot are two writes: no Nagle wait between them
      try {
        await c.greeting();
        const r = await c.send(
          'sender@client.test',
          ['someone@relay.test'],
          `Subject: ${tag}\r\n\r\nnormal client\r\n`,
        );
        await c.cmd('QUIT');
        return { ms: Date.now() - started, last: r.last };
      } finally {
        c.close();
      }
    };
    try {
      // normal latency with nobody dripping
      const baseline: number[] = [];
      for (let i = 0; i < 10; i++) baseline.push((await normal(`baseline ${i}`)).ms);

      // the drippers, from five source addresses; and alongside them, normal clients back to back
      // and one slow but legitimate client
      const sources = ['127.0.0.30', '127.0.0.31', '127.0.0.32', '127.0.0.33', '127.0.0.34'];
      const drips: Array<Promise<Cut>> = [];
      for (let i = 0; i < COMMAND_DRIPPERS; i++) drips.push(dripper(d.port, sources[i % 5]!, 'command'));
      for (let i = 0; i < EHLO_DRIPPERS; i++) drips.push(dripper(d.port, sources[i % 5]!, 'after-ehlo'));
      for (let i = 0; i < DATA_DRIPPERS; i++) drips.push(dripper(d.port, sources[i % 5]!, 'data'));
      let dripping = true;
      const all = Promise.all(drips).finally(() => (dripping = false));
      const during: Array<{ ms: number; last: string }> = [];
      const normals = (async () => {
        let i = 0;
        while (dripping) during.push(await normal(`during ${i++}`));
      })();
      const slow = (async () => {
        const c = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.40');
        try {
          await c.greeting();
          const replies: string[] = [];
          for (const line of [
            'EHLO slow.client.test',
            'MAIL FROM:<slow@client.test>',
            'RCPT TO:<someone@relay.test>',
            'DATA',
          ]) {
            await sleep(SMTP_TIMEOUT_MS * 0.75);
            replies.push((await c.cmd(line)).last);
          }
          await sleep(SMTP_TIMEOUT_MS * 0.75);
          c.write('Subject: slow\r\n\r\nslow but in time\r\n.\r\n');
          replies.push((await c.reply()).last);
          await sleep(SMTP_TIMEOUT_MS * 0.75);
          replies.push((await c.cmd('QUIT')).last);
          return replies;
        } finally {
          c.close();
        }
      })();
      const cuts = await all;
      await normals;
      const slowReplies = await slow;

      const byKind = (k: Cut['kind']): Cut[] => cuts.filter((c) => c.kind === k);
      const summary = (k: Cut['kind']): string => {
        const ms = byKind(k).map((c) => c.ms);
        return `${k}: ${ms.length} cut after min ${Math.min(...ms)} / p50 ${pct(ms, 50)} / max ${Math.max(...ms)} ms`;
      };
      t.diagnostic(`${summary('command')}; ${summary('after-ehlo')}; ${summary('data')}`);
      t.diagnostic(
        `normal transactions: before p50 ${pct(baseline, 50)} max ${Math.max(...baseline)} ms; ` +
          `during (${during.length}) p50 ${pct(
            during.map((x) => x.ms),
            50,
          )} p99 ${pct(
            during.map((x) => x.ms),
            99,
          )} max ${Math.max(...during.map((x) => x.ms))} ms`,
      );

      for (const c of cuts) {
        assert.equal(c.reply, c.kind === 'data' ? DATA_TIMEOUT_REPLY : TIMEOUT_REPLY, `${c.kind} dripper`);
        assert.ok(c.closed, `${c.kind} dripper closed after the 421`);
        const limit = c.kind === 'data' ? DATA_TIMEOUT_MS : SMTP_TIMEOUT_MS;
        // on time: not before the timeout, and not much after it (the others do not delay the cut)
        assert.ok(
          c.ms >= limit - 20 && c.ms <= limit + 1500,
          `${c.kind} dripper cut after ${c.ms} ms (timeout ${limit} ms)`,
        );
        assert.ok(c.bytes >= 2, `${c.kind} dripper kept sending (${c.bytes} bytes) and was cut anyway`);
      }
      assert.equal(cuts.length, COMMAND_DRIPPERS + EHLO_DRIPPERS + DATA_DRIPPERS);

      // normal clients were served the whole time
      assert.ok(during.length >= 5, `normal transactions during the drip: ${during.length}`);
      for (const x of during) assert.match(x.last, /^250 2\.0\.0 /);
      assert.ok(Math.max(...during.map((x) => x.ms)) < 3000, 'no normal transaction waited seconds');
      assert.deepEqual(
        slowReplies.map((r) => r.slice(0, 3)),
        ['250', '250', '250', '354', '250', '221'],
        `slow client: ${JSON.stringify(slowReplies)}`,
      );
      const delivered = sink.messages.filter((m) => /normal client|slow but in time/.test(m.data.toString())).length;
      assert.equal(delivered, baseline.length + during.length + 1, 'every accepted message reached the RelayHost');
      assert.equal(
        sink.messages.filter((m) => m.data.toString().includes('Subject: drip')).length,
        0,
        'no dripped message was delivered',
      );
      const count = (ev: string): number => d.logs.filter((l) => l.event === ev).length;
      for (const until = Date.now() + 5000; count('session.end') < count('session.connect') && Date.now() < until; )
        await sleep(100);
      assert.equal(count('session.end'), count('session.connect'), 'a session.end for every session');
      assert.equal(
        d.logs.filter((l) => l.level === 'error' || l.event === 'daemon.error').length,
        0,
        'no error logged',
      );
    } finally {
      await d.stop();
      await sink.close();
    }
  },
);
