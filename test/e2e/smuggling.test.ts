/**
 * SMTP smuggling (Dec 2023): every non-CRLF end-of-data variant must be refused with 554 5.6.0
 * and must never let a second message reach the downstream.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';

let sink: Sink;
let d: Daemon;
before(async () => {
  sink = await startSink();
  d = await startDaemon({ conf: `RelayHost 127.0.0.1:${sink.port}\nRelayNet 127.0.0.0/8` });
});
after(async () => {
  await d.stop();
  await sink.close();
});

const VARIANTS: Record<string, string> = {
  '\\n.\\n': '\n.\n',
  '\\n.\\r\\n': '\n.\r\n',
  '\\r.\\r': '\r.\r',
  '\\r\\n.\\r': '\r\n.\r',
  '\\r\\n.\\n': '\r\n.\n',
  '\\r.\\r\\n': '\r.\r\n',
};

for (const [name, eod] of Object.entries(VARIANTS)) {
  test(`smuggling variant ${name} is refused and injects nothing`, async () => {
    const before = sink.messages.length;
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    await c.cmd('EHLO attacker.test');
    assert.match((await c.cmd('MAIL FROM:<a@attacker.test>')).last, /^250/);
    assert.match((await c.cmd('RCPT TO:<victim@elsewhere.test>')).last, /^250/);
    assert.match((await c.cmd('DATA')).last, /^354/);
    c.write(
      'Subject: first\r\n\r\nfirst message' +
        eod +
        'MAIL FROM:<admin@bank.test>\r\nRCPT TO:<victim@elsewhere.test>\r\nDATA\r\n' +
        'Subject: SMUGGLED\r\n\r\nsmuggled\r\n.\r\n',
    );
    const r = await c.reply();
    assert.equal(r.last, '554 5.6.0 message contains a bare CR or LF; lines must end with CRLF');
    // the session is usable afterwards, and nothing was delivered
    assert.match((await c.cmd('NOOP')).last, /^250/);
    c.close();
    assert.equal(sink.messages.length, before);
    assert.ok(!sink.messages.some((m) => m.data.includes('SMUGGLED')));
  });
}

test('bare LF inside an otherwise normal message is refused', async () => {
  const c = await SmtpClient.connect(d.port);
  await c.greeting();
  const r = await c.send('a@x.test', ['b@elsewhere.test'], 'Subject: x\r\n\r\nbare\nlf\r\n');
  assert.equal(r.code, 554);
  c.close();
});

test('NUL bytes in data are refused; NUL in a command gets 500', async () => {
  const c = await SmtpClient.connect(d.port);
  await c.greeting();
  const r = await c.send('a@x.test', ['b@elsewhere.test'], 'Subject: x\r\n\r\nnul\x00here\r\n');
  assert.equal(r.last, '554 5.6.0 message contains NUL characters');
  assert.equal((await c.cmd('NOOP\x00')).last, '500 5.5.2 command contains NUL or bare CR characters');
  c.close();
});

test('a proper CRLF.CRLF followed by pipelined commands is two legitimate transactions', async () => {
  const before = sink.messages.length;
  const c = await SmtpClient.connect(d.port);
  await c.greeting();
  await c.cmd('EHLO client.test');
  c.write('MAIL FROM:<a@x.test>\r\nRCPT TO:<b@elsewhere.test>\r\nDATA\r\n');
  await c.reply();
  await c.reply();
  await c.reply();
  c.write('Subject: one\r\n\r\none\r\n.\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@elsewhere.test>\r\nDATA\r\n');
  assert.match((await c.reply()).last, /^250 2\.0\.0/);
  assert.match((await c.reply()).last, /^250/);
  assert.match((await c.reply()).last, /^250/);
  assert.match((await c.reply()).last, /^354/);
  c.write('Subject: two\r\n\r\ntwo\r\n.\r\n');
  assert.match((await c.reply()).last, /^250 2\.0\.0/);
  c.close();
  assert.equal(sink.messages.length, before + 2);
});
