/** Limits: MaxClients, MaxClientsPerIP, MaxMsgSize while streaming, MaxRcpts, MaxErrors, command length, SMTPTimeout. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon } from '../support/daemon.js';
import { startSink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';

test('MaxClientsPerIP and MaxClients: 421 4.7.0 and close', async () => {
  const d = await startDaemon({ conf: 'MaxClients 3\nMaxClientsPerIP 2' });
  const open: SmtpClient[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const c = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.5');
      assert.match((await c.greeting()).last, /^220 /);
      open.push(c);
    }
    const third = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.5');
    assert.equal((await third.greeting()).last, '421 4.7.0 too many connections from your address, try again later');
    assert.ok(await third.waitClosed());
    const other = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.6');
    assert.match((await other.greeting()).last, /^220 /);
    open.push(other);
    const fourth = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.7');
    assert.equal((await fourth.greeting()).last, '421 4.7.0 too many connections, try again later');
    assert.ok(await fourth.waitClosed());
    // a slot frees up when a client leaves
    open.shift()!.close();
    await new Promise((r) => setTimeout(r, 200));
    const again = await SmtpClient.connect(d.port, '127.0.0.1', '127.0.0.7');
    assert.match((await again.greeting()).last, /^220 /);
    open.push(again);
    const refused = await d.waitLog((l) => l.event === 'session.refused');
    assert.equal(refused.limit, 'max-per-ip');
  } finally {
    for (const c of open) c.close();
    await d.stop();
  }
});

test('oversize message: 552 5.3.4 before the whole message is sent; SIZE= over the limit refused at MAIL', async () => {
  const sink = await startSink();
  const d = await startDaemon({ conf: `MaxMsgSize 100k\nRelayHost 127.0.0.1:${sink.port}` });
  try {
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    await c.cmd('EHLO client.test');
    assert.equal((await c.cmd('MAIL FROM:<a@x.test> SIZE=200000')).last.slice(0, 9), '552 5.3.4');
    assert.match((await c.cmd('MAIL FROM:<a@x.test> SIZE=1000')).last, /^250/);
    await c.cmd('RCPT TO:<b@elsewhere.test>');
    assert.match((await c.cmd('DATA')).last, /^354/);
    // send 10 MB in 64 KB pieces, stop as soon as a reply arrives
    const piece = ('y'.repeat(1022) + '\r\n').repeat(64);
    let sent = 0;
    let got: string | null = null;
    const replyP = c.reply(20_000).then((r) => (got = r.last));
    while (got === null && sent < 10 * 1024 * 1024 && !c.closed) {
      c.write(piece);
      sent += piece.length;
      await new Promise((r) => setImmediate(r));
      if (c.socket.writableNeedDrain) await new Promise((r) => c.socket.once('drain', r).once('close', r));
    }
    await replyP;
    assert.equal(got, '552 5.3.4 message exceeds the maximum size of 102400 bytes');
    assert.ok(sent < 10 * 1024 * 1024, `reply came before the client sent everything (sent ${sent})`);
    assert.ok(await c.waitClosed());
    assert.equal(sink.messages.length, 0);
  } finally {
    await d.stop();
    await sink.close();
  }
});

test('a command line over 512 octets gets 500 5.5.2; MaxErrors bad commands → 421', async () => {
  const d = await startDaemon({ conf: 'MaxErrors 3' });
  try {
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    assert.equal((await c.cmd('NOOP ' + 'a'.repeat(505))).code, 250, '512 octets with CRLF is fine');
    assert.equal((await c.cmd('NOOP ' + 'a'.repeat(506))).last, '500 5.5.2 line too long (more than 512 octets)');
    assert.match((await c.cmd('BOGUS')).last, /^500 5\.5\.2/);
    const third = await c.cmd('HELO');
    assert.match(third.last, /^501/);
    assert.equal((await c.reply()).last, '421 4.7.0 too many errors, closing connection');
    assert.ok(await c.waitClosed());
  } finally {
    await d.stop();
  }
});

test('MaxRcpts: recipient beyond the limit gets 452 4.5.3', async () => {
  const d = await startDaemon({ conf: 'MaxRcpts 2\nRelayNet 127.0.0.0/8' });
  try {
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@x.test>');
    assert.match((await c.cmd('RCPT TO:<r1@elsewhere.test>')).last, /^250/);
    assert.match((await c.cmd('RCPT TO:<r2@elsewhere.test>')).last, /^250/);
    assert.match((await c.cmd('RCPT TO:<r3@elsewhere.test>')).last, /^452 4\.5\.3 /);
    c.close();
  } finally {
    await d.stop();
  }
});

test('SMTPTimeout: an idle client gets 421 4.4.2 and is disconnected; a slow dripper too', async () => {
  const d = await startDaemon({ conf: 'SMTPTimeout 1s' });
  try {
    const idle = await SmtpClient.connect(d.port);
    await idle.greeting();
    assert.equal((await idle.reply(5000)).last, '421 4.4.2 timeout exceeded, closing connection');
    assert.ok(await idle.waitClosed());
    // a byte every 300 ms does not keep a session alive: shown by order, not by a wall-clock bound
    // a loaded machine can miss. The dripper is greeted first and an idle control 200 ms later; the
    // dripper's deadline falls first, so its 421 comes first. Bytes that moved its deadline even
    // once would put its cut after the control's (or never).
    const drip = await SmtpClient.connect(d.port);
    await drip.greeting();
    const timer = setInterval(() => drip.write('N'), 300);
    const order: string[] = [];
    try {
      const dripCut = drip.reply(10_000).then((r) => (order.push('dripper'), r.last));
      await new Promise((r) => setTimeout(r, 200));
      const control = await SmtpClient.connect(d.port);
      try {
        await control.greeting();
        const controlCut = control.reply(10_000).then((r) => (order.push('control'), r.last));
        assert.equal(await dripCut, '421 4.4.2 timeout exceeded, closing connection');
        assert.equal(await controlCut, '421 4.4.2 timeout exceeded, closing connection');
      } finally {
        control.close();
      }
    } finally {
      clearInterval(timer);
    }
    assert.deepEqual(order, ['dripper', 'control'], 'the dripper is cut before an idle client greeted after it');
    assert.ok(await drip.waitClosed());
  } finally {
    await d.stop();
  }
});
