/**
 * Issue 14, items 3–5 by test: what asmtpd offers follows the downstream; the RFC deviations
 * (555 for parameters not offered or unknown, a duplicate parameter, a non-ASCII HELO in
 * Received); the rough edges (--check without a file, the generic text of a downstream failure,
 * --verbose showing the wire text); and the proxy's own rules (RSET reaches the downstream, its
 * RCPT refusal reaches the client, RelayConnections bounds the sessions held).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startDaemon, ASMTPD_BIN, type Daemon } from '../support/daemon.js';
import { startWireSink, type WireSink } from '../support/wire-sink.js';
import { SmtpClient } from '../support/smtp-client.js';
import { freePort } from '../support/ports.js';

let sink: WireSink;
let d: Daemon;

before(async () => {
  sink = await startWireSink({
    rcptReply: (to) => (to.startsWith('nobody@') ? '550 5.1.1 <nobody@example.test>: user unknown' : null),
  });
  d = await startDaemon({ verbose: true, conf: `RelayHost 127.0.0.1:${sink.port}\nRelayNet 127.0.0.0/8` });
});
after(async () => {
  await d?.stop();
  await sink?.close();
});

async function session(port = d.port): Promise<SmtpClient> {
  const c = await SmtpClient.connect(port);
  await c.greeting();
  await c.cmd('EHLO client.test');
  return c;
}

test('unknown MAIL/RCPT parameters → 555 5.5.4 (RFC 5321 §4.1.1.11); a duplicate one → 501 5.5.4', async () => {
  const c = await session();
  try {
    assert.equal(
      (await c.cmd('MAIL FROM:<a@client.test> FOO=bar')).last,
      '555 5.5.4 MAIL FROM parameter FOO is not supported',
    );
    assert.equal(
      (await c.cmd('MAIL FROM:<a@client.test> XYZZY')).last,
      '555 5.5.4 MAIL FROM parameter XYZZY is not supported',
    );
    assert.equal(
      (await c.cmd('MAIL FROM:<a@client.test> RET=HDRS')).last,
      '555 5.5.4 MAIL FROM parameter RET is not supported',
      'DSN is not offered',
    );
    assert.equal(
      (await c.cmd('MAIL FROM:<a@client.test> SIZE=10 SIZE=20')).last,
      '501 5.5.4 Error: duplicate SIZE parameter',
    );
    assert.equal((await c.cmd('MAIL FROM:<a@client.test> SIZE=10 BODY=8BITMIME')).last, '250 2.1.0 sender ok');
    assert.equal(
      (await c.cmd('RCPT TO:<b@example.test> NOTIFY=SUCCESS')).last,
      '555 5.5.4 RCPT TO parameter NOTIFY is not supported',
    );
    assert.equal(
      (await c.cmd('RCPT TO:<b@example.test> XYZZY')).last,
      '555 5.5.4 RCPT TO parameter XYZZY is not supported',
    );
    assert.equal((await c.cmd('RCPT TO:<b@example.test>')).last, '250 2.1.5 recipient ok');
  } finally {
    c.close();
  }
});

test('a non-ASCII HELO: "?" in Received without SMTPUTF8, as sent with it', async () => {
  const n = sink.messages.length;
  for (const smtputf8 of [false, true]) {
    const c = await SmtpClient.connect(d.port);
    try {
      await c.greeting();
      await c.cmd('EHLO caf\xc3\xa9.example');
      assert.equal((await c.cmd(`MAIL FROM:<a@client.test>${smtputf8 ? ' SMTPUTF8' : ''}`)).code, 250);
      assert.equal((await c.cmd('RCPT TO:<b@example.test>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      c.write('Subject: helo\r\n\r\nx\r\n.\r\n');
      assert.match((await c.reply()).last, /^250 /);
    } finally {
      c.close();
    }
  }
  const [plain, utf8] = sink.messages.slice(n).map((m) => m.data.toString('latin1'));
  assert.match(plain!, /^Received: from caf\?\.example \(\[127\.0\.0\.1\]\) by mx\.example\.test /m);
  assert.match(
    utf8!,
    /^Received: from caf\xc3\xa9\.example \(\[127\.0\.0\.1\]\) by mx\.example\.test \(asmtpd [^)]+\)\r\n\twith UTF8SMTP /m,
  );
});

test('EHLO offers SMTPUTF8, 8BITMIME and SIZE only as far as the downstream does; MAIL needing one that is missing → 555 / 552', async () => {
  const narrow = await startWireSink({ extensions: ['PIPELINING', 'SIZE 10000'] });
  const d2 = await startDaemon({ conf: `RelayHost 127.0.0.1:${narrow.port}\nRelayNet 127.0.0.0/8` });
  try {
    const c = await SmtpClient.connect(d2.port);
    try {
      await c.greeting();
      const ehlo = await c.cmd('EHLO client.test');
      assert.deepEqual(ehlo.lines.slice(1), ['250-PIPELINING', '250-ENHANCEDSTATUSCODES', '250 SIZE 10000']);
      assert.equal(
        (await c.cmd('MAIL FROM:<a@client.test> BODY=8BITMIME')).last,
        '555 5.6.3 BODY=8BITMIME is not supported here: the mail store behind this server takes 7-bit messages only',
      );
      assert.equal(
        (await c.cmd('MAIL FROM:<a@client.test> SMTPUTF8')).last,
        '555 5.6.7 SMTPUTF8 is not supported here: the mail store behind this server cannot take internationalized mail',
      );
      assert.match((await c.cmd('MAIL FROM:<a@client.test> SIZE=20000')).last, /^552 5\.3\.4 /);
      assert.equal((await c.cmd('MAIL FROM:<a@client.test> BODY=7BIT SIZE=2000')).last, '250 2.1.0 sender ok');
    } finally {
      c.close();
    }
    // the embedded default (hold queue) and Sendmail take everything: checked by the other suites' EHLO
  } finally {
    await d2.stop();
    await narrow.close();
  }
});

test("the downstream's RCPT refusal reaches the client's RCPT; the others go through; RSET resets the downstream transaction", async () => {
  const before = sink.messages.length;
  const commands = sink.commands.length;
  const c = await session();
  try {
    assert.equal((await c.cmd('MAIL FROM:<a@client.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<one@example.test>')).last, '250 2.1.5 recipient ok');
    assert.equal((await c.cmd('RCPT TO:<nobody@example.test>')).last, '550 5.1.1 <nobody@example.test>: user unknown');
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<a@client.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<two@example.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<nobody@example.test>')).code, 550);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('Subject: x\r\n\r\nx\r\n.\r\n');
    assert.match((await c.reply()).last, /^250 2\.0\.0 /);
  } finally {
    c.close();
  }
  assert.deepEqual(
    sink.commands.slice(commands).filter((l) => !/^(EHLO|QUIT)/.test(l)),
    [
      'MAIL FROM:<a@client.test>',
      'RCPT TO:<one@example.test>',
      'RCPT TO:<nobody@example.test>',
      'RSET',
      'MAIL FROM:<a@client.test>',
      'RCPT TO:<two@example.test>',
      'RCPT TO:<nobody@example.test>',
      'DATA',
    ],
  );
  assert.deepEqual(
    sink.messages.slice(before).map((m) => m.to),
    [['two@example.test']],
  );
});

test('RelayConnections 1: a second transaction while the one session is held goes on without RCPT-time verdicts and is delivered after DATA', async () => {
  const w = await startWireSink();
  // RelayConnections is per SMTP process: one process, so that the second transaction meets the first's pool
  const d2 = await startDaemon({
    conf: `RelayHost 127.0.0.1:${w.port}\nRelayNet 127.0.0.0/8\nRelayConnections 1\nWorkers 1`,
  });
  try {
    const a = await session(d2.port);
    const b = await session(d2.port);
    try {
      await a.cmd('MAIL FROM:<a@client.test>');
      assert.equal((await a.cmd('RCPT TO:<held@example.test>')).code, 250);
      await b.cmd('MAIL FROM:<b@client.test>');
      assert.equal((await b.cmd('RCPT TO:<busy@example.test>')).code, 250);
      const line = await d2.waitLog((l) => l.event === 'rcpt.decision' && l['to'] === 'busy@example.test');
      assert.equal(line['downstream'], 'busy');
      for (const c of [a, b]) {
        assert.equal((await c.cmd('DATA')).code, 354);
        c.write('Subject: x\r\n\r\nx\r\n.\r\n');
        assert.match((await c.reply(20_000)).last, /^250 2\.0\.0 /);
      }
    } finally {
      a.close();
      b.close();
    }
    assert.deepEqual(w.messages.map((m) => m.to).sort(), [['busy@example.test'], ['held@example.test']]);
    assert.equal(w.connections, 1, 'never more than RelayConnections sessions');
  } finally {
    await d2.stop();
    await w.close();
  }
});

test("downstream down: the client hears a generic 451, the downstream's address and the cause are only in the log", async () => {
  const dead = await freePort();
  const d2 = await startDaemon({ conf: `RelayHost 127.0.0.1:${dead}\nRelayNet 127.0.0.0/8` });
  try {
    const c = await session(d2.port);
    try {
      await c.cmd('MAIL FROM:<a@client.test>');
      const r = await c.cmd('RCPT TO:<b@example.test>');
      assert.equal(r.last, '451 4.4.1 mail system temporarily unavailable, try again later');
      assert.ok(!r.last.includes('127.0.0.1') && !r.last.includes(String(dead)) && !r.last.includes('ECONNREFUSED'));
    } finally {
      c.close();
    }
    const line = await d2.waitLog((l) => l.event === 'rcpt.decision');
    assert.equal(line['detail'], `downstream 127.0.0.1:${dead} unavailable: ECONNREFUSED`);
  } finally {
    await d2.stop();
  }
});

test('--verbose logs what went over the wire: "221 2.0.0 Bye", UTF-8 commands decoded once', async () => {
  const c = await SmtpClient.connect(d.port);
  await c.greeting();
  await c.cmd('EHLO client.test');
  assert.equal((await c.cmd('MAIL FROM:<jos\xc3\xa9@client.test> SMTPUTF8')).code, 250);
  assert.equal((await c.cmd('QUIT')).last, '221 2.0.0 Bye');
  c.close();
  const bye = await d.waitLog(
    (l) => l.event === 'session.smtp' && typeof l['reply'] === 'string' && String(l['reply']).startsWith('221'),
  );
  assert.equal(bye['reply'], '221 2.0.0 Bye');
  const mail = await d.waitLog(
    (l) =>
      l.event === 'session.smtp' &&
      typeof l['command'] === 'string' &&
      String(l['command']).startsWith('MAIL FROM:<jos'),
  );
  assert.equal(mail['command'], 'MAIL FROM:<josé@client.test> SMTPUTF8');
  const ehlo = await d.waitLog((l) => l.event === 'session.smtp' && String(l['reply'] ?? '').startsWith('250-'));
  assert.match(String(ehlo['reply']), /^250-mx\.example\.test .*\r\n250-PIPELINING\r\n/, 'a multi-line reply as sent');
});

test(
  'asmtpd --check without a configuration file checks the embedded default and exits 0',
  {
    skip: existsSync('/etc/avenger/asmtpd.conf')
      ? 'skipped: /etc/avenger/asmtpd.conf exists here, so it is what --check reads'
      : false,
  },
  () => {
    const r = spawnSync(process.execPath, [ASMTPD_BIN, '--check'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^\(embedded default\): OK \(\d+ directives\)$/m);
    const missing = spawnSync(process.execPath, [ASMTPD_BIN, '--check', '-f', '/nonexistent/asmtpd.conf'], {
      encoding: 'utf8',
    });
    assert.equal(missing.status, 2, 'a file named with -f must exist');
  },
);
