/**
 * The hold queue as a real queue (issue 20): mail held while the MTA is down is retried by the
 * daemon with backoff and delivered when the MTA returns; `asmtpd --flush` delivers at once (also
 * one DOMAIN, or --to HOST:PORT); a permanent 5xx moves the message to failed/ and a DSN reaches
 * the sender; HoldMaxAge expires into failed/ with a DSN (the clock moved on with
 * ASMTPD_TEST_CLOCK_OFFSET_MS); `--queue` shows held, retried and failed messages; HoldDomain mail
 * is taken from anyone, always held, and only flushed on demand, per recipient; `--release ID` of a
 * failed message requeues its failed recipients only (a new DSN if they fail again; the delivered
 * one never gets a second copy).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { asmtpdCli as asmtpd, heldBodies, queueIdOf, queueJson, sendOne, until } from '../support/hold-cli.js';
import { freePort } from '../support/ports.js';
import { startSink, type Sink } from '../support/sink.js';
import { postfixUnavailableReason, startPostfix, type PostfixInstance } from '../support/postfix.js';
import { SmtpClient } from '../support/smtp-client.js';

const noPostfix = postfixUnavailableReason();
if (noPostfix && process.env.CI) throw new Error(`CI needs a real Postfix for these tests: ${noPostfix}`);

test('held while the MTA is down: retried with backoff (attempts counted), delivered by the daemon when it returns, byte-identical', async () => {
  const mtaPort = await freePort();
  let sink: Sink | null = null;
  const d = await startDaemon({
    conf: [
      'RelayNet 127.0.0.0/8',
      `RelayHost 127.0.0.1:${mtaPort}`,
      'HoldOnFailure yes',
      'HoldRetry 1s 2s',
      'RelayTimeout 5s',
    ].join('\n'),
  });
  try {
    for (let i = 0; i < 3; i++) {
      const r = await sendOne(
        d.port,
        'alice@sender.test',
        [`bob${i}@remote.test`],
        `Subject: held ${i}\r\n\r\nbody ${i}\r\n.dot line\r\n`,
      );
      assert.match(r, /^250 /);
    }
    const bodies = await heldBodies(d);
    assert.equal(bodies.size, 3);
    // the daemon retries on its own: two attempts each while the MTA is still down
    await d.waitLog((l) => l.event === 'queue.deferred' && Number(l.attempts) >= 2, 20_000);
    const listed = await queueJson(d);
    assert.equal(listed.length, 3);
    for (const m of listed) {
      assert.equal(m.state === 'queued' || m.state === 'active', true);
      assert.ok(m.attempts >= 1, 'attempts counted');
      assert.match(m.lastError ?? '', /^451 4\.4\.1 .*unavailable/);
    }
    const text = await asmtpd(d, ['--queue']);
    assert.match(text.stdout, /(queued|active) age \d+s size \d+ attempts [1-9]/);
    assert.match(text.stdout, /last error: 451 4\.4\.1/);
    assert.match(text.stdout, /3 messages: /);

    sink = await startSink({ kind: 'accept' }, mtaPort);
    await until('3 messages at the MTA', () => sink!.messages.length >= 3 || undefined, 20_000);
    await until('the queue empty', () => readdirSync(join(d.dbDir, 'queue', 'new')).length === 0 || undefined);
    assert.equal(sink.messages.length, 3, 'each delivered once');
    for (const m of sink.messages) {
      const expected = bodies.get(queueIdOf(m.data));
      assert.ok(expected, 'a held message');
      assert.ok(m.data.equals(expected), 'byte-identical to the held copy');
    }
    const delivered = await until('three queue.delivered lines', () => {
      const lines = d.logs.filter((l) => l.event === 'queue.delivered');
      return lines.length >= 3 && lines;
    });
    assert.equal(delivered.length, 3);
    assert.ok(
      delivered.every((l) => Number(l.attempts) >= 3 && l.by === 'retry'),
      'delivered on a later attempt',
    );
    assert.deepEqual(await queueJson(d), []);
  } finally {
    await d.stop();
    await sink?.close();
  }
});

test('asmtpd --flush delivers held mail at once; DOMAIN takes only its recipients; --to sends elsewhere', async () => {
  const mtaPort = await freePort();
  let sink: Sink | null = null;
  let other: Sink | null = null;
  const d = await startDaemon({
    conf: [
      'RelayNet 127.0.0.0/8',
      `RelayHost 127.0.0.1:${mtaPort}`,
      'HoldOnFailure yes',
      'HoldRetry 1h 4h',
      'RelayTimeout 5s',
    ].join('\n'),
  });
  try {
    assert.match(await sendOne(d.port, 'alice@sender.test', ['a@one.test'], 'Subject: one\r\n\r\n1\r\n'), /^250 /);
    assert.match(
      await sendOne(d.port, 'alice@sender.test', ['b@two.test', 'c@one.test'], 'Subject: two\r\n\r\n2\r\n'),
      /^250 /,
    );
    assert.match(await sendOne(d.port, 'alice@sender.test', ['d@three.test'], 'Subject: three\r\n\r\n3\r\n'), /^250 /);
    const bodies = await heldBodies(d);
    sink = await startSink({ kind: 'accept' }, mtaPort);
    // one.test only: the first message, and c@ of the second (its b@ stays held)
    const one = await asmtpd(d, ['--flush', 'one.test']);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^delivered 2 deferred 0 failed 0 busy 0/);
    assert.deepEqual(sink.messages.map((m) => m.to).sort(), [['a@one.test'], ['c@one.test']]);
    for (const m of sink.messages) assert.ok(m.data.equals(bodies.get(queueIdOf(m.data))!), 'byte-identical');
    let listed = await queueJson(d);
    assert.equal(listed.length, 2);
    const split = listed.find((m) => m.done.length > 0)!;
    assert.deepEqual(split.to, ['b@two.test']);
    assert.deepEqual(split.done, ['c@one.test']);
    // --to: every remaining recipient to another host
    other = await startSink({ kind: 'accept' });
    const to = await asmtpd(d, ['--flush', '--to', `127.0.0.1:${other.port}`]);
    assert.match(to.stdout, /^delivered 2 /);
    assert.deepEqual(other.messages.map((m) => m.to).sort(), [['b@two.test'], ['d@three.test']]);
    assert.equal(sink.messages.length, 2, 'nobody got a message twice');
    listed = await queueJson(d);
    assert.deepEqual(listed, []);
    assert.deepEqual(readdirSync(join(d.dbDir, 'queue', 'meta')), [], 'no record left');
  } finally {
    await d.stop();
    await sink?.close();
    await other?.close();
  }
});

test('a permanent 5xx moves the message to failed/ with the reply, and a DSN reaches the sender; --hold and --release', async () => {
  const mtaPort = await freePort();
  let sink: Sink | null = null;
  const d = await startDaemon({
    conf: [
      'RelayNet 127.0.0.0/8',
      `RelayHost 127.0.0.1:${mtaPort}`,
      'HoldOnFailure yes',
      'HoldRetry 1h 4h',
      'RelayTimeout 5s',
    ].join('\n'),
  });
  try {
    const original = 'Subject: will bounce\r\nMessage-ID: <bounce-1@sender.test>\r\n\r\nno such user\r\n';
    assert.match(
      await sendOne(d.port, 'alice@sender.test', ['nobody@remote.test', 'ok@remote.test'], original),
      /^250 /,
    );
    assert.match(
      await sendOne(d.port, 'alice@sender.test', ['later@remote.test'], 'Subject: later\r\n\r\nx\r\n'),
      /^250 /,
    );
    const later = (await queueJson(d)).find((m) => m.to.includes('later@remote.test'))!;
    const held = await asmtpd(d, ['--hold', later.id]);
    assert.equal(held.code, 0, held.stderr);
    sink = await startSink(
      { kind: 'reject-rcpt-matching', pattern: /^nobody@/, code: 550, text: '5.1.1 no such user' },
      mtaPort,
    );
    const r = await asmtpd(d, ['--flush']);
    assert.match(r.stdout, /^delivered 0 deferred 0 failed 1 busy 0/);
    // ok@ got the message, the DSN went to alice@, the held one was not tried
    await until('the DSN', () => sink!.messages.find((m) => m.from === ''));
    const dsn = sink.messages.find((m) => m.from === '')!;
    assert.deepEqual(dsn.to, ['alice@sender.test']);
    const text = dsn.data.toString('utf8');
    assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status/);
    assert.match(text, /Final-Recipient: rfc822; nobody@remote\.test\r\nAction: failed\r\nStatus: 5\.1\.1/);
    assert.match(text, /Diagnostic-Code: smtp; 550 5\.1\.1 no such user/);
    assert.match(text, /Content-Type: text\/rfc822-headers\r\n\r\n[^]*Subject: will bounce\r\n/);
    assert.deepEqual(
      sink.messages.filter((m) => m.from !== '').map((m) => m.to),
      [['ok@remote.test']],
    );
    const listed = await queueJson(d);
    const failed = listed.find((m) => m.state === 'failed')!;
    assert.deepEqual(failed.done, ['ok@remote.test']);
    assert.deepEqual(failed.failed, [{ to: 'nobody@remote.test', reply: '550 5.1.1 no such user' }]);
    assert.equal(readdirSync(join(d.dbDir, 'queue', 'failed')).length, 1);
    const heldNow = listed.find((m) => m.state === 'held')!;
    assert.equal(heldNow.id, later.id);
    const text2 = (await asmtpd(d, ['--queue'])).stdout;
    assert.match(
      text2,
      / failed age .*\n.*\n {2}to <ok@remote\.test> delivered\n {2}to <nobody@remote\.test> failed: 550 5\.1\.1 no such user/,
    );
    assert.match(text2, /1 queued, 0 active, 1 held, 1 failed|0 queued, 0 active, 1 held, 1 failed/);
    // released: tried at the next flush
    assert.equal((await asmtpd(d, ['--release', later.id])).code, 0);
    assert.match((await asmtpd(d, ['--flush'])).stdout, /^delivered 1 /);
    assert.ok(sink.messages.some((m) => m.to.includes('later@remote.test')));
    // --delete of the failed one
    assert.equal((await asmtpd(d, ['--queue', '--delete', failed.id])).code, 0);
    assert.deepEqual(await queueJson(d), []);
  } finally {
    await d.stop();
    await sink?.close();
  }
});

test('HoldMaxAge: held mail older than it goes to failed/ (4.4.7) and the sender gets a DSN; a null sender gets none', async () => {
  const mtaPort = await freePort();
  let sink: Sink | null = null;
  const d = await startDaemon({
    conf: [
      'RelayNet 127.0.0.0/8',
      `RelayHost 127.0.0.1:${mtaPort}`,
      'HoldOnFailure yes',
      'HoldRetry 1h 4h',
      'HoldMaxAge 5d',
      'RelayTimeout 5s',
    ].join('\n'),
  });
  try {
    assert.match(
      await sendOne(d.port, 'alice@sender.test', ['old@remote.test'], 'Subject: too old\r\n\r\nx\r\n'),
      /^250 /,
    );
    assert.match(await sendOne(d.port, '', ['old2@remote.test'], 'Subject: bounce too old\r\n\r\nx\r\n'), /^250 /);
    sink = await startSink({ kind: 'accept' }, mtaPort);
    // four days on: not yet expired, delivered normally? no: the MTA is up, so the age check comes first
    const sixDays = String(6 * 86_400_000);
    const r = await asmtpd(d, ['--flush'], { ASMTPD_TEST_CLOCK_OFFSET_MS: sixDays });
    assert.match(r.stdout, /^delivered 0 deferred 0 failed 2 busy 0/);
    await until('the DSN', () => sink!.messages.find((m) => m.from === ''));
    assert.equal(sink.messages.length, 1, 'only the DSN; none for the null sender, the originals not sent');
    const dsn = sink.messages[0]!;
    assert.deepEqual(dsn.to, ['alice@sender.test']);
    assert.match(dsn.data.toString(), /Final-Recipient: rfc822; old@remote\.test\r\nAction: failed\r\nStatus: 4\.4\.7/);
    assert.match(dsn.data.toString(), /Subject: too old/);
    const listed = await queueJson(d);
    assert.equal(listed.length, 2);
    assert.ok(
      listed.every((m) => m.state === 'failed' && /^451 4\.4\.7 delivery time expired/.test(m.failed[0]!.reply)),
    );
  } finally {
    await d.stop();
    await sink?.close();
  }
});

test('HoldDomain: taken from a stranger, always held (never retried, never relayed), flushed on demand to its site', async () => {
  const site = await startSink({ kind: 'accept' });
  const mta = await startSink({ kind: 'accept' });
  const d = await startDaemon({
    conf: [
      // the test client (127.0.0.1) is a stranger
      'RelayNet 192.0.2.1',
      `RelayHost 127.0.0.1:${mta.port}`,
      'HoldRetry 1s 1s',
      `HoldDomain office.test office-user 127.0.0.1:${site.port}`,
      'HoldDomain office.test second-user',
      'RelayTimeout 5s',
    ].join('\n'),
  });
  try {
    // a client outside RelayNet: office.test is ours, anything else is relaying
    assert.match(
      await sendOne(d.port, 'x@sender.test', ['boss@office.test'], 'Subject: for the office\r\n\r\nhi\r\n'),
      /^250 /,
    );
    const c = await SmtpClient.connect(d.port);
    await c.greeting();
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<x@sender.test>');
    assert.match((await c.cmd('RCPT TO:<someone@elsewhere.test>')).last, /^5\d\d /, 'not an open relay');
    c.close();
    // retries run every quarter second: HoldDomain mail is never among them
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(site.messages.length + mta.messages.length, 0);
    assert.equal(await countHeldForDomain(d, 'office.test'), 1);
    const r = await asmtpd(d, ['--flush', 'office.test']);
    assert.match(r.stdout, /^delivered 1 /);
    assert.deepEqual(
      site.messages.map((m) => m.to),
      [['boss@office.test']],
    );
    assert.equal(mta.messages.length, 0);
    assert.deepEqual(await queueJson(d), []);
  } finally {
    await d.stop();
    await site.close();
    await mta.close();
  }
});

async function countHeldForDomain(d: Daemon, domain: string): Promise<number> {
  return (await queueJson(d, domain)).filter((m) => m.to.some((t) => t.endsWith(`@${domain}`))).length;
}

test(
  'a real Postfix as the MTA: down while mail is held, back up, asmtpd --flush delivers to its Maildir unchanged',
  { skip: noPostfix ? `skipped: ${noPostfix}` : false },
  async () => {
    const mtaPort = await freePort();
    let pf: PostfixInstance | null = null;
    const d = await startDaemon({
      conf: [
        'RelayNet 127.0.0.0/8',
        `RelayHost 127.0.0.1:${mtaPort}`,
        'HoldOnFailure yes',
        'HoldRetry 1h 4h',
        'RelayTimeout 5s',
      ].join('\n'),
    });
    try {
      for (let i = 0; i < 3; i++)
        assert.match(
          await sendOne(
            d.port,
            'alice@sender.test',
            [`u${i}@remote.test`],
            `Subject: pf ${i}\r\n\r\nline ${i}\r\n..dots\r\n`,
          ),
          /^250 /,
        );
      const bodies = await heldBodies(d);
      pf = await startPostfix({ mode: 'maildir', smtpdPort: mtaPort });
      const r = await asmtpd(d, ['--flush']);
      assert.match(r.stdout, /^delivered 3 deferred 0 failed 0 busy 0/, r.stderr);
      const files = await pf.waitForMessages(3, 20_000);
      assert.equal(files.length, 3);
      for (const f of files) {
        const data = readFileSync(f);
        // Postfix prepends Return-Path, Delivered-To and its Received, and stores LF line ends
        const text = data.toString('latin1');
        const same = [...bodies.values()].filter((b) => text.endsWith(b.toString('latin1').replace(/\r\n/g, '\n')));
        assert.equal(same.length, 1, "one held message, unchanged after Postfix's own fields");
      }
      assert.deepEqual(await queueJson(d), []);
    } finally {
      await d.stop();
      await pf?.stop();
    }
  },
);

test('--release ID of a failed message: its failed recipient is tried again (a new DSN when it fails again), the delivered one never gets a second copy; --queue shows it', async () => {
  const mtaPort = await freePort();
  let sink: Sink | null = null;
  const d = await startDaemon({
    conf: [
      'RelayNet 127.0.0.0/8',
      `RelayHost 127.0.0.1:${mtaPort}`,
      'HoldOnFailure yes',
      'HoldRetry 1h 4h',
      'RelayTimeout 5s',
    ].join('\n'),
  });
  try {
    const original = 'Subject: typo in a mailertable\r\nMessage-ID: <requeue-1@sender.test>\r\n\r\nbody\r\n..dot\r\n';
    assert.match(await sendOne(d.port, 'alice@sender.test', ['typo@remote.test', 'ok@remote.test'], original), /^250 /);
    const bodies = await heldBodies(d);
    assert.equal(bodies.size, 1);
    const body = [...bodies.values()][0]!;
    // from here on only the command line works on the queue: the daemon's retry scheduler (its main
    // process) is paused with SIGSTOP, since its passes (due at once after --release) would race the
    // flushes whose counts this test reads. It holds no claim now: the message is not due for 1h.
    d.signal('SIGSTOP');
    sink = await startSink(
      { kind: 'reject-rcpt-matching', pattern: /^typo@/, code: 550, text: '5.1.1 no such user' },
      mtaPort,
    );
    const dsns = (): number => sink!.messages.filter((m) => m.from === '').length;
    const copiesTo = (rcpt: string): number =>
      sink!.messages.filter((m) => m.from !== '' && m.to.includes(rcpt)).length;

    const first = await asmtpd(d, ['--flush']);
    assert.match(first.stdout, /^delivered 0 deferred 0 failed 1 busy 0/, first.stderr);
    assert.equal(dsns(), 1);
    assert.equal(copiesTo('ok@remote.test'), 1);
    const [failed] = await queueJson(d);
    assert.equal(failed!.state, 'failed');
    assert.equal(failed!.attempts, 1);

    // released while the backend still says 550: tried again, fails again, a second DSN
    let r = await asmtpd(d, ['--release', failed!.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      `released ${failed!.id} from failed/: due now\n  to <typo@remote.test> again (had failed: 550 5.1.1 no such user)\n`,
    );
    let [m] = await queueJson(d);
    assert.equal(m!.state, 'queued');
    assert.deepEqual(m!.to, ['typo@remote.test'], 'only the failed recipient is to go');
    assert.deepEqual(m!.done, ['ok@remote.test']);
    assert.deepEqual(m!.failed, []);
    assert.equal(m!.attempts, 0, 'attempts start again');
    assert.ok(Date.parse(m!.nextRetry!) <= Date.now(), 'due at once');
    assert.equal(m!.requeued.length, 1);
    assert.deepEqual(m!.requeued[0]!.failed, [{ to: 'typo@remote.test', reply: '550 5.1.1 no such user' }]);
    assert.equal(m!.requeued[0]!.attempts, 1);
    const text = (await asmtpd(d, ['--queue'])).stdout;
    assert.match(text, / queued age \S+ size \d+ attempts 0 next /);
    assert.match(text, /\n {2}to <typo@remote\.test>\n {2}to <ok@remote\.test> delivered\n/);
    assert.match(
      text,
      /\n {2}released from failed\/ \S+ after 1 attempts: <typo@remote\.test> had failed: 550 5\.1\.1 no such user\n/,
    );
    assert.match(text, /1 message: 1 queued, 0 active, 0 held, 0 failed/);
    assert.match((await asmtpd(d, ['--flush'])).stdout, /^delivered 0 deferred 0 failed 1 busy 0/);
    await until('the second DSN', () => dsns() === 2 || undefined);
    assert.match(
      sink.messages.filter((x) => x.from === '')[1]!.data.toString(),
      /Final-Recipient: rfc822; typo@remote\.test\r\nAction: failed\r\nStatus: 5\.1\.1/,
    );
    assert.equal(copiesTo('ok@remote.test'), 1, 'the delivered recipient was not sent again');

    // the backend fixed: released again, the next flush delivers to the failed recipient only
    sink.mode = { kind: 'accept' };
    [m] = await queueJson(d);
    assert.equal(m!.state, 'failed');
    r = await asmtpd(d, ['--release', m!.id]);
    assert.equal(r.code, 0, r.stderr);
    [m] = await queueJson(d);
    assert.equal(m!.requeued.length, 2, 'every earlier failure kept');
    assert.match((await asmtpd(d, ['--flush'])).stdout, /^delivered 1 deferred 0 failed 0 busy 0/);
    const toTypo = sink.messages.filter((x) => x.from !== '' && x.to.includes('typo@remote.test'));
    assert.equal(toTypo.length, 1);
    assert.deepEqual(toTypo[0]!.to, ['typo@remote.test'], 'one transaction for the failed recipient alone');
    assert.ok(toTypo[0]!.data.equals(body), 'byte-identical to the held copy');
    assert.equal(copiesTo('ok@remote.test'), 1, 'still one copy for the delivered recipient');
    assert.equal(dsns(), 2, 'no DSN for a delivery');
    assert.deepEqual(await queueJson(d), []);
    assert.deepEqual(readdirSync(join(d.dbDir, 'queue', 'meta')), [], 'no record left');

    // what cannot be released
    const gone = await asmtpd(d, ['--release', m!.id]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no message /);
  } finally {
    d.signal('SIGCONT');
    await d.stop();
    await sink?.close();
  }
});
