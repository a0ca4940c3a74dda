/**
 * The envelope sender through Postfix's real sendmail(1) (a private Postfix, test/support/
 * postfix-sendmail.ts): the daemon with Mail Avenger's `Sendmail sendmail …` line queues each
 * message with the client's MAIL FROM (the null sender too), never with the account it runs as,
 * and `asmtpd --check` says what it runs; `sendmac`, run by a real user, queues with a fresh
 * MAC-coded sender that `macutil --check` accepts. Needs root (a private Postfix, test accounts);
 * in CI that is a failure if missing, elsewhere the tests are skipped with the reason.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ASMTPD_BIN, startDaemon, type Daemon } from '../support/daemon.js';
import { postfixUnavailableReason, startPostfix, type PostfixInstance } from '../support/postfix.js';
import {
  POSTFIX_SENDMAIL,
  SUBMIT_CONFIG_DIR,
  postfixSendmailUnavailable,
  useSubmitConfig,
} from '../support/postfix-sendmail.js';
import { SmtpClient } from '../support/smtp-client.js';
import { canCreateUsers, createUser, etcWithPasswd, removeUser, type TestUser } from '../support/users.js';
import { accountIds } from '../support/procs.js';

const TOOLS = fileURLToPath(new URL('../../../packages/asmtpd/tools', import.meta.url));
const unavailable = canCreateUsers() ?? postfixUnavailableReason() ?? postfixSendmailUnavailable();
if (unavailable && process.env.CI) throw new Error(`CI runs as root with Postfix (.ci/run): ${unavailable}`);
const skip = unavailable ? `skipped: ${unavailable}` : false;

let pf: PostfixInstance;
let release: () => void = () => {};
let d: Daemon;
let user: TestUser, av: TestUser;
let etc: string;

before(async () => {
  if (unavailable) return;
  pf = await startPostfix({ mode: 'maildir' });
  release = await useSubmitConfig(pf);
  user = createUser('sendenv');
  av = createUser('sendenvav');
  const e = etcWithPasswd([user, av]);
  etc = e.etc;
  d = await startDaemon({
    etcDir: etc,
    conf: [
      'LocalDomain a.example',
      `PasswdFile ${e.passwd}`,
      `AvengerUser ${av.name}`,
      // Mail Avenger's sample line: a program name, found on the fixed search path
      `Sendmail sendmail -C ${SUBMIT_CONFIG_DIR}`,
    ].join('\n'),
  });
});

after(async () => {
  if (unavailable) return;
  await d?.stop();
  release();
  await pf?.stop();
  for (const u of [user, av]) if (u) removeUser(u);
  if (etc) rmSync(etc, { recursive: true, force: true });
});

/** The delivered message whose Subject is `subject` (Postfix's virtual delivery adds Return-Path). */
async function delivered(subject: string, count: number): Promise<string> {
  await pf.waitForMessages(count, 30_000);
  const all = (await pf.readMessages()).map((m) => m.toString('latin1'));
  const hit = all.find((m) => m.includes(`\nSubject: ${subject}\n`));
  assert.ok(hit, `no message with Subject: ${subject} among ${all.length}`);
  return hit;
}

test('asmtpd --check shows the program it found and the argv it will run', { skip }, () => {
  const r = spawnSync(process.execPath, [ASMTPD_BIN, '--check', '-f', d.confPath], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.ok(
    r.stdout.includes(`Sendmail runs: ${POSTFIX_SENDMAIL} -C ${SUBMIT_CONFIG_DIR} -oi -f SENDER -- RECIPIENT...\n`),
    r.stdout,
  );
});

test(
  'Sendmail: Postfix queues the message with the envelope sender (the null sender too), not the account asmtpd runs as',
  { skip },
  async () => {
    const c = await SmtpClient.connect(d.port);
    try {
      await c.greeting();
      const body = 'From: alice@sender.example\r\nSubject: envelope one\r\n\r\nline\r\n.\r\nafter a lone dot\r\n';
      const r = await c.send('alice@sender.example', [`${user.name}@a.example`], body);
      assert.equal(r.code, 250, r.last);
      const bounce = 'From: MAILER-DAEMON@sender.example\r\nSubject: envelope two\r\n\r\nbounce\r\n';
      c.write('RSET\r\n');
      await c.reply();
      const r2 = await c.send('', [`${user.name}@a.example`], bounce);
      assert.equal(r2.code, 250, r2.last);
    } finally {
      c.close();
    }
    const one = await delivered('envelope one', 1);
    assert.match(one, /^Return-Path: <alice@sender\.example>\n/);
    assert.match(one, /\nline\n\.\nafter a lone dot\n$/, '-oi: a lone dot does not end the message');
    // sendmail ran as DaemonUser (asmtpd): Postfix says so, and still took the client's sender
    const asmtpd = accountIds('asmtpd');
    assert.match(one, new RegExp(`\\(Postfix, from userid ${asmtpd.uid}\\)`));
    assert.doesNotMatch(one, /^Return-Path: <(asmtpd|avenger|at)/m);
    const two = await delivered('envelope two', 2);
    assert.match(two, /^Return-Path: <>\n/);
  },
);

test(
  'sendmac, run by a real user, queues with a fresh coded sender that macutil --check accepts',
  { skip },
  async () => {
    const env = { HOME: user.home, USER: user.name, PATH: '/usr/local/bin:/usr/bin:/bin' };
    const asUser = (argv: string[], input = '') =>
      spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', ...argv], {
        encoding: 'utf8',
        input,
        env,
        cwd: user.home,
        timeout: 30_000,
      });
    const r = asUser(
      [`${TOOLS}/sendmac`, '-C', SUBMIT_CONFIG_DIR, '-oi', '--', 'friend@dest.example'],
      'From: me\nSubject: envelope three\n\nhello\n',
    );
    assert.equal(r.status, 0, r.stderr);
    const three = await delivered('envelope three', 3);
    const m = new RegExp(`^Return-Path: <${user.name}\\+([a-z2-7]{16})@[^>]+>\\n`).exec(three);
    assert.ok(m, three.slice(0, 300));
    assert.equal(asUser([`${TOOLS}/macutil`, '--check', m[1]!]).status, 0, 'the code is genuine');
    assert.match(three, new RegExp(`\\(Postfix, from userid ${user.uid}\\)`));
    // a sender of one's own is refused before sendmail runs
    const own = asUser([`${TOOLS}/sendmac`, '-f', 'me@x', 'friend@dest.example'], 'x\n');
    assert.equal(own.status, 2);
    assert.match(own.stderr, /the envelope sender is the one macutil makes/);
  },
);
