/**
 * The hold queue as a real queue (issue 20): mail held while the MTA is down is retried by the
 * daemon with backoff and delivered when the MTA returns; `asmtpd --flush` delivers at once (also
 * one DOMAIN, or --to HOST:PORT); a permanent 5xx moves the message to failed/ and a DSN reaches
 * the sender; HoldMaxAge expires into failed/ with a DSN (the clock moved on with
 * ASMTPD_TEST_CLOCK_OFFSET_MS); `--queue` shows held, retried and failed messages; HoldDomain mail
 * is taken from anyone, always held, and only flushed on demand, per recipient.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readHeld } from 'asmtpd/dist/relay/hold-queue.js';
import { ASMTPD_BIN, startDaemon, type Daemon } from '../support/daemon.js';
import { freePort } from '../support/ports.js';
import { startSink, type Sink } from '../support/sink.js';
import { SmtpClient } from '../support/smtp-client.js';

const run = promisify(execFile);

async function asmtpd(
  d: Daemon,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [ASMTPD_BIN, ...args, '-f', d.confPath], {
      env: { ...process.env, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

interface Listed {
  id: string;
  state: string;
  from: string;
  to: string[];
  done: string[];
  failed: { to: string; reply: string }[];
  attempts: number;
  lastError: string | null;
  nextRetry: string | null;
}

async function queueJson(d: Daemon, domain?: string): Promise<Listed[]> {
  const r = await asmtpd(d, ['--queue', ...(domain ? [domain] : []), '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Listed[];
}

async function sendOne(port: number, from: string, to: string[], body: string): Promise<string> {
  const c = await SmtpClient.connect(port);
  try {
    await c.greeting();
    const r = await c.send(from, to, body);
    return r.last;
  } finally {
    c.close();
  }
}

/** the message bytes of every file in new/ (what the downstream must get, byte for byte) */
async function heldBodies(d: Daemon): Promise<Map<string, Buffer>> {
  const dir = join(d.dbDir, 'queue', 'new');
  const out = new Map<string, Buffer>();
  for (const f of readdirSync(dir)) {
    const env = await readHeld(join(dir, f));
    out.set(env.queueId, readFileSync(join(dir, f)).subarray(env.headerOffset));
  }
  return out;
}

async function until<T>(what: string, f: () => T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const queueIdOf = (data: Buffer): string => /\bid ([A-Z0-9]+)/.exec(data.toString('latin1'))?.[1] ?? '';

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
