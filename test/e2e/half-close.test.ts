/**
 * Issue 14, item 1: a client that half-closes after its final dot still gets the 250 and the 221,
 * and a message is delivered once. Exim 4.96 (Debian's exim4-daemon-light, unpacked by .ci/run)
 * delivering with -odi sends ".\r\nQUIT\r\n" and shuts down its sending side; before the fix it
 * logged "Remote host closed connection in response to end of data" and sent the message again.
 * Then our own clients: the same half-close by hand, a half-close inside the message (no dot: no
 * message), a client gone before asmtpd's final dot went downstream (the downstream transaction is
 * dropped: data.abandoned) and one gone after it (delivered, logged and counted: data.unanswered).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startWireSink, type WireSink } from '../support/wire-sink.js';
import { eximUnavailableReason, makeExim } from '../support/exim.js';
import { SmtpClient } from '../support/smtp-client.js';

const noExim = eximUnavailableReason();
if (noExim && process.env.CI) throw new Error(`CI needs Exim for these tests: ${noExim}`);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let sink: WireSink;
let d: Daemon;

before(async () => {
  sink = await startWireSink();
  d = await startDaemon({ conf: `RelayHost 127.0.0.1:${sink.port}\nRelayNet 127.0.0.0/8` });
});
after(async () => {
  await d?.stop();
  await sink?.close();
});

/** Everything the server sends until it closes the connection (or timeoutMs). */
function transcript(
  port: number,
  script: (write: (s: string) => void, end: () => void, destroy: () => void, seen: () => string) => Promise<void>,
  timeoutMs = 15_000,
): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let text = '';
    let closedByServer = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closedByServer });
    }, timeoutMs);
    s.on('data', (b: Buffer) => (text += b.toString('latin1')));
    s.on('end', () => {
      closedByServer = true;
      s.end();
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closedByServer });
    });
    s.on('error', () => undefined);
    s.once('connect', () => {
      script(
        (x) => s.write(x),
        () => s.end(),
        () => s.destroy(),
        () => text,
      ).catch(reject);
    });
  });
}

async function waitFor(pred: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred() && Date.now() < deadline) await sleep(25);
}

test(
  'Exim 4 -odi (".\\r\\nQUIT\\r\\n", then half-close): one copy, Exim logs Completed',
  { skip: noExim ? `skipped: ${noExim}` : false },
  async () => {
    const before = sink.messages.length;
    const ex = await makeExim({ smarthost: `127.0.0.1::${d.port}` });
    try {
      for (let i = 1; i <= 3; i++) {
        const r = await ex.send(
          'sender@exim.test',
          [`rcpt${i}@example.test`],
          `From: sender@exim.test\nSubject: exim ${i}\nMessage-ID: <exim-${i}@exim.test>\n\nbody ${i}\n`,
        );
        assert.equal(r.status, 0, r.output);
      }
      const log = await ex.mainlog();
      assert.equal((log.match(/ Completed/g) ?? []).length, 3, log);
      assert.doesNotMatch(log, /closed connection|defer|==/, log);
      assert.equal(ex.queueCount(), 0, "nothing left in Exim's queue to retry");
      await sleep(300);
      assert.equal(sink.messages.length - before, 3, 'each message once at the downstream');
      assert.deepEqual(
        sink.messages.slice(before).map((m) => m.to),
        [['rcpt1@example.test'], ['rcpt2@example.test'], ['rcpt3@example.test']],
      );
    } finally {
      await ex.stop();
    }
  },
);

test('a client that half-closes after ".\\r\\nQUIT\\r\\n" gets 250 and 221; the message is delivered once', async () => {
  const before = sink.messages.length;
  const r = await transcript(d.port, async (write, end, _destroy, seen) => {
    write('EHLO half.test\r\nMAIL FROM:<a@half.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n');
    await waitFor(() => seen().includes('354 '), 5000);
    write('Subject: half-close\r\n\r\nbody\r\n.\r\nQUIT\r\n');
    end(); // shutdown(SHUT_WR), as Exim does
  });
  assert.match(r.text, /\r\n250 2\.0\.0 Ok: queued as [0-9A-Z]+\r\n221 2\.0\.0 /, JSON.stringify(r));
  assert.ok(r.closedByServer, 'the server closed after the 221');
  assert.equal(sink.messages.length - before, 1);
  const line = d.logs.find((l) => l.event === 'session.half_closed');
  assert.ok(line, 'session.half_closed logged');
});

test('a half-close right after the dot, without QUIT: the 250 is written, then the server closes', async () => {
  const before = sink.messages.length;
  const r = await transcript(d.port, async (write, end, _destroy, seen) => {
    write('EHLO half.test\r\nMAIL FROM:<a@half.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n');
    await waitFor(() => seen().includes('354 '), 5000);
    write('Subject: half-close 2\r\n\r\nbody\r\n.\r\n');
    end();
  });
  assert.match(r.text, /\r\n250 2\.0\.0 Ok: queued as [0-9A-Z]+\r\n$/, JSON.stringify(r));
  assert.ok(r.closedByServer);
  assert.equal(sink.messages.length - before, 1);
});

test('a half-close inside the message (no final dot): no message, the downstream transaction is reset', async () => {
  const before = sink.messages.length;
  const commandsBefore = sink.commands.length;
  const r = await transcript(d.port, async (write, end, _destroy, seen) => {
    write('EHLO half.test\r\nMAIL FROM:<a@half.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n');
    await waitFor(() => seen().includes('354 '), 5000);
    write('Subject: cut\r\n\r\nthe rest never comes\r\n');
    end();
  });
  assert.ok(r.closedByServer);
  assert.doesNotMatch(r.text, /\r\n250 2\.0\.0 Ok/);
  await waitFor(() => sink.commands.slice(commandsBefore).includes('RSET'), 3000);
  assert.deepEqual(
    sink.commands.slice(commandsBefore).filter((c) => !/^EHLO/.test(c)),
    ['MAIL FROM:<a@half.test>', 'RCPT TO:<b@example.test>', 'RSET'],
    'MAIL and RCPT went downstream at RCPT time; the cut message was reset there',
  );
  assert.equal(sink.messages.length - before, 0);
});

test("a client gone before asmtpd's final dot: the downstream transaction is dropped (data.abandoned); gone after it: delivered, counted (data.unanswered)", async () => {
  const slowData = await startWireSink({ delay354Ms: 1500 });
  const slowVerdict = await startWireSink({ finalReplyDelayMs: 1500 });
  const d2 = await startDaemon({ conf: `RelayHost 127.0.0.1:${slowData.port}\nRelayNet 127.0.0.0/8` });
  const d3 = await startDaemon({ conf: `RelayHost 127.0.0.1:${slowVerdict.port}\nRelayNet 127.0.0.0/8` });
  try {
    for (const [daemon, wait] of [
      [d2, 200],
      [d3, 600],
    ] as const) {
      const c = await SmtpClient.connect(daemon.port);
      await c.greeting();
      await c.cmd('EHLO gone.test');
      await c.cmd('MAIL FROM:<a@gone.test>');
      assert.equal((await c.cmd('RCPT TO:<b@example.test>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      c.write('Subject: gone\r\n\r\nbody\r\n.\r\n');
      await sleep(wait);
      c.socket.resetAndDestroy(); // a reset, not a half-close: the client is really gone
    }
    const abandoned = await d2.waitLog((l) => l.event === 'data.abandoned', 10_000);
    assert.ok(abandoned);
    await sleep(300);
    assert.equal(slowData.dataCommands, 1, 'the downstream got DATA…');
    assert.equal(slowData.messages.length, 0, '…but never the final dot: nothing delivered');
    const unanswered = await d3.waitLog((l) => l.event === 'data.unanswered', 10_000);
    assert.equal(unanswered.level, 'warn');
    assert.equal(unanswered['count'], 1);
    assert.match(String(unanswered['reply']), /^250 2\.0\.0 /);
    assert.equal(slowVerdict.messages.length, 1, 'after the dot the downstream has it: delivered, the window logged');
  } finally {
    await d2.stop();
    await d3.stop();
    await slowData.close();
    await slowVerdict.close();
  }
});
