/**
 * Mailertable (issue 18): relay domains read from a sendmail mailertable, end to end — the real
 * daemon and two private Postfix backends: `v6`, listening on ::1 only and named by an IPv6
 * literal (`[IPv6:::1]`), with a list of the recipients it knows; and `nonull`, on 127.0.0.1,
 * which refuses the null sender (`MAIL FROM:<>`: check_sender_access), so it cannot verify
 * anything. Backend connections are counted in each Postfix's log ("connect from").
 *
 *   f.test  smtp:[127.0.0.1]:DEAD:[IPv6:::1]:V6    a dead primary, the IPv6 fallback answers
 *   n.test  smtp:[127.0.0.1]:NONULL:[IPv6:::1]:V6  the primary refuses MAIL FROM:<>: the fallback
 *   o.test  smtp:[127.0.0.1]:NONULL                 only that one: 451 4.4.1 (RcptVerifyTempfail yes)
 *   later   g.test added to the file: taken within a second, without SIGHUP
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startPostfix, postfixUnavailableReason, type PostfixInstance } from '../support/postfix.js';
import { SmtpClient } from '../support/smtp-client.js';
import { freePort } from '../support/ports.js';

const unavailable = postfixUnavailableReason();
if (unavailable && process.env.CI) throw new Error(`CI needs a real Postfix for these tests: ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

const UNKNOWN = (a: string): string =>
  `550 5.1.1 <${a}>: Recipient address rejected: User unknown in virtual mailbox table`;

let v6: PostfixInstance;
let nonull: PostfixInstance;
let d: Daemon;
let dir: string;
let table: string;
let dead: number;

const connects = async (pf: PostfixInstance): Promise<number> =>
  ((await pf.log()).match(/ connect from /g) ?? []).length;

function writeTable(lines: string[]): void {
  writeFileSync(`${table}.new`, lines.join('\n') + '\n', { mode: 0o644 });
  renameSync(`${table}.new`, table);
}

const LINES = (): string[] => [
  '# written by test/e2e/mailertable.test.ts',
  `f.test   smtp:[127.0.0.1]:${dead}:[IPv6:::1]:${v6.port}`,
  `n.test   esmtp:[127.0.0.1]:${nonull.port}:[IPv6:::1]:${v6.port}`,
  `o.test   smtp:[127.0.0.1]:${nonull.port}`,
];

before(async () => {
  if (unavailable) return;
  const noNullSender = { smtpd_sender_restrictions: 'check_sender_access inline:{ <>=REJECT }' };
  [v6, nonull, dead] = await Promise.all([
    startPostfix({
      mode: 'maildir',
      listen: '::1',
      recipients: ['alice@f.test', 'bob@n.test', 'carol@g.test'],
      mainCf: { smtpd_error_sleep_time: '0' },
    }),
    startPostfix({ mode: 'maildir', recipients: ['bob@n.test', 'olga@o.test'], mainCf: noNullSender }),
    freePort(),
  ]);
  dir = mkdtempSync(join(tmpdir(), 'asmtpd-mailertable-'));
  chmodSync(dir, 0o755);
  table = join(dir, 'mailertable');
  writeTable(LINES());
  d = await startDaemon({
    conf: ['RelayNet 192.0.2.0/24', `Mailertable ${table}`, 'RcptVerifyBackoff 1h'].join('\n'),
  });
});
after(async () => {
  await d?.stop();
  await Promise.all([v6?.stop(), nonull?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** the daemon's log lines of an event, once at least n of them are in (the log is a pipe) */
async function logsOf(event: string, n: number): Promise<Daemon['logs']> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = d.logs.filter((l) => l.event === event);
    if (lines.length >= n || Date.now() > deadline) return lines;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function session(): Promise<SmtpClient> {
  const c = await SmtpClient.connect(d.port);
  await c.greeting();
  await c.cmd('EHLO client.test');
  assert.equal((await c.cmd('MAIL FROM:<sender@remote.test>')).code, 250);
  return c;
}

test('a dead primary: the IPv6-literal fallback verifies and takes the mail', { skip }, async () => {
  const c = await session();
  assert.equal((await c.cmd('RCPT TO:<alice@f.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<nobody@f.test>')).last, UNKNOWN('nobody@f.test'));
  assert.equal((await c.cmd('DATA')).code, 354);
  assert.match((await c.cmd('Subject: via mailertable\r\n\r\nhello\r\n.')).last, /^250 /);
  await c.cmd('QUIT');
  c.close();
  const files = await v6.waitForMessages(1, 20_000);
  assert.equal(files.length, 1);
  // X-Avenger names the verification, not the recipients (one header for all: no Bcc disclosed)
  assert.match(readFileSync(files[0]!, 'latin1').replace(/\r?\n\t/g, ' '), /^X-Avenger: .*; rcpt-verify=valid\r?$/m);
  const decisions = (await logsOf('rcpt.decision', 2)).filter((l) => String(l.to).endsWith('@f.test'));
  assert.deepEqual(
    decisions.map((l) => [l.to, l.route, l.verify, l.backend]),
    [
      ['alice@f.test', 'relay-domain', 'valid', `[::1]:${v6.port}`],
      ['nobody@f.test', 'relay-domain', 'invalid', `[::1]:${v6.port}`],
    ],
  );
});

test(
  'a backend refusing MAIL FROM:<>: the fallback answers; with none, 451 4.4.1 (RcptVerifyTempfail yes)',
  { skip },
  async () => {
    const before = { v6: await connects(v6), nonull: await connects(nonull) };
    const c = await session();
    assert.equal((await c.cmd('RCPT TO:<bob@n.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<nobody@n.test>')).last, UNKNOWN('nobody@n.test'));
    assert.equal(
      (await c.cmd('RCPT TO:<olga@o.test>')).last,
      '451 4.4.1 cannot verify the recipient now, try again later',
      'olga exists there, but a backend that refuses <> cannot say so',
    );
    assert.equal((await c.cmd('RCPT TO:<olga@o.test>')).code, 451, 'never cached as invalid');
    await c.cmd('QUIT');
    c.close();
    const failed = await logsOf('rcpt.verify_failed', 2);
    assert.equal(failed.length, 2);
    assert.match(
      String(failed[0]!.detail),
      /MAIL FROM:<> refused: 554 5\.7\.1 <>: Sender address rejected: Access denied/,
    );
    // no backoff for a backend that answers: each verification asked it again (a session each,
    // since Postfix's 554 to MAIL leaves the pooled session without a transaction)
    const after = { v6: await connects(v6), nonull: await connects(nonull) };
    assert.ok(after.nonull - before.nonull >= 1, `nonull asked: ${after.nonull - before.nonull}`);
    assert.ok(after.v6 - before.v6 <= 1, `the fallback's session reused: ${after.v6 - before.v6}`);
  },
);

test('the Mailertable is re-read when it changes, without SIGHUP', { skip }, async () => {
  let c = await session();
  assert.equal((await c.cmd('RCPT TO:<carol@g.test>')).last, '550 5.7.1 relaying denied');
  await c.cmd('QUIT');
  c.close();
  writeTable([...LINES(), `g.test   smtp:[IPv6:::1]:${v6.port}`]);
  await new Promise((r) => setTimeout(r, 1100));
  c = await session();
  assert.equal((await c.cmd('RCPT TO:<carol@g.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<nobody@g.test>')).last, UNKNOWN('nobody@g.test'));
  await c.cmd('QUIT');
  c.close();
});
